package policy

import (
	"bytes"
	"strings"
	"testing"
)

func TestWatchTable(t *testing.T) {
	if w := Default().Watch; w.Action != WatchLog || w.Scancel != "scancel" {
		t.Errorf("default [watch]: %+v", w)
	}
	p := mustParse(t, "[watch]\naction = \"Cancel\"\nscancel = \"/opt/slurm/bin/scancel\"\n")
	if p.Watch.Action != WatchCancel || p.Watch.Scancel != "/opt/slurm/bin/scancel" {
		t.Errorf("[watch]: %+v", p.Watch)
	}
	var out bytes.Buffer
	p.WriteEffective(&out)
	if !strings.Contains(out.String(), "[watch]\naction = \"cancel\"\n") {
		t.Errorf("effective policy lacks [watch]:\n%s", &out)
	}
	if p.Digest() == Default().Digest() {
		t.Error("the watch action does not change the digest")
	}

	for text, want := range map[string]string{
		"[watch]\naction = \"kill\"\n": `test.toml:2: watch.action: unknown watch action ` +
			`"kill" (want one of log, notify, cancel)`,
		"[watch]\nscancel = \"\"\n":   "test.toml:2: watch.scancel: must not be empty",
		"[watch]\nactoin = \"log\"\n": "test.toml:2: watch.actoin: unknown key",
	} {
		_, err := Parse("test.toml", []byte(text))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", text, err, want)
		}
	}
}
