package slurm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/gate/launch"
	"github.com/scan-gate/scan-gate/policy"
)

func TestParseOption(t *testing.T) {
	tests := []struct {
		value string
		want  Option
		bad   bool
	}{
		{"", Option{}, false},
		{"enforce", Option{Mode: policy.ModeEnforce}, false},
		{"warn,report", Option{Mode: policy.ModeWarn, Report: true}, false},
		{"report", Option{Report: true}, false},
		{"report,audit", Option{Mode: policy.ModeAudit, Report: true}, false},
		{"off", Option{}, true},
		{"enforce,warn", Option{}, true},
		{"enforce,", Option{}, true},
	}
	for _, tt := range tests {
		got, err := ParseOption(tt.value)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseOption(%q) = %+v, %v; want %+v, error %v", tt.value, got, err,
				tt.want, tt.bad)
		}
	}
}

// verdict evaluates a scan with one critical and one high finding under p.
func verdict(p *policy.Policy) gate.Result {
	scan := &finding.Scan{Findings: []finding.Finding{
		{ID: "CVE-1", Package: "curl", Installed: "1", FixedVersions: []string{"2"},
			Severity: finding.Critical},
		{ID: "CVE-2", Package: "expat", Installed: "1", FixedVersions: []string{"2"},
			Severity: finding.High},
	}}
	v := p.Evaluate(scan, policy.Subject{Image: "/i.sif"}, time.Now())
	return gate.Result{Image: "/i.sif", Action: v.Action, Verdict: v, Message: v.Message("/i.sif")}
}

func TestOptionOnlyTightens(t *testing.T) {
	tests := []struct {
		policyMode policy.Mode
		option     policy.Mode
		want       policy.Action
		note       bool
	}{
		{policy.ModeEnforce, policy.ModeWarn, policy.Block, true},
		{policy.ModeEnforce, policy.ModeAudit, policy.Block, true},
		{policy.ModeEnforce, policy.ModeEnforce, policy.Block, false},
		{policy.ModeWarn, policy.ModeEnforce, policy.Block, false},
		{policy.ModeAudit, policy.ModeWarn, policy.Warn, false},
		{policy.ModeAudit, policy.ModeEnforce, policy.Block, false},
		{policy.ModeWarn, policy.ModeAudit, policy.Warn, true},
		{policy.ModeWarn, "", policy.Warn, false},
	}
	for _, tt := range tests {
		p := policy.Default()
		p.Mode = tt.policyMode
		res := verdict(p)
		note := Option{Mode: tt.option}.apply(&res, p)
		if res.Action != tt.want || res.Verdict.Action != tt.want || (note != "") != tt.note {
			t.Errorf("policy %s, --scan-gate=%s: %s, note %q; want %s, note %v",
				tt.policyMode, tt.option, res.Action, note, tt.want, tt.note)
		}
		if tt.want == policy.Block && !strings.HasPrefix(res.Message, "image /i.sif blocked: ") {
			t.Errorf("policy %s, --scan-gate=%s: message %q", tt.policyMode, tt.option,
				res.Message)
		}
	}
}

func TestOptionTightensNoDecision(t *testing.T) {
	p := policy.Default()
	p.Mode = policy.ModeWarn
	v := p.NoDecision(policy.Subject{Image: "/i.sif"}, false, "scanner failed")
	res := gate.Result{Image: "/i.sif", Action: v.Action, Verdict: v}
	Option{Mode: policy.ModeEnforce}.apply(&res, p)
	if res.Action != policy.Block || !strings.Contains(res.Message, p.Message.NoDecisionStep) {
		t.Errorf("no decision under --scan-gate=enforce: %s, %q", res.Action, res.Message)
	}
}

func TestAnswerRoundTrip(t *testing.T) {
	a := Answer{Action: policy.Block, Watch: true,
		Images: []Checked{{Path: "rel dir/a.sif", ID: image.FileID{Dev: 2049, Ino: 1 << 40,
			Size: 4096, MtimeNs: 1764000000123456789, CtimeNs: 1764000000987654321}}},
		Messages: []string{"image /x blocked:\nsplit", "note"}}
	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		t.Fatal(err)
	}
	want := "scan-gate-spank 2\nimage 2049 1099511627776 4096 1764000000123456789 " +
		"1764000000987654321 rel dir/a.sif\n" +
		"message image /x blocked: split\nmessage note\nwatch yes\naction block\nend\n"
	if buf.String() != want {
		t.Errorf("answer:\n%s\nwant:\n%s", buf.String(), want)
	}
	got, err := ReadAnswer(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Action != a.Action || !got.Watch || !slices.Equal(got.Images, a.Images) ||
		got.Messages[0] != "image /x blocked: split" {
		t.Errorf("read back %+v", got)
	}
	for _, bad := range []string{"", "scan-gate-spank 1\naction allow\nend\n",
		"scan-gate-spank 2\naction allow\n", "scan-gate-spank 2\nend\n",
		"scan-gate-spank 2\nimage x 1 2 3 4 a\naction allow\nend\n",
		// Version 1's image line: device and inode only.
		"scan-gate-spank 2\nimage 2049 12 a.sif\naction allow\nend\n"} {
		if _, err := ReadAnswer(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadAnswer(%q) succeeded", bad)
		}
	}
}

// fakeCommand writes a script that prints out and exits with code, for Tools.
func fakeCommand(t *testing.T, out string, code int) string {
	path := filepath.Join(t.TempDir(), "fake")
	script := "#!/bin/sh\ncat <<'EOF'\n" + out + "EOF\nexit " + string(rune('0'+code)) + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLookupJob(t *testing.T) {
	tools := Tools{Squeue: fakeCommand(t,
		"42|alice|1000|chem|2000|gpu|(null)|/home/alice/a|b dir\n", 0)}
	job, err := tools.LookupJob(context.Background(), "42")
	want := Job{ID: "42", User: "alice", UID: 1000, GID: 2000, Partition: "gpu",
		WorkDir: "/home/alice/a|b dir"}
	if err != nil || job != want {
		t.Errorf("LookupJob = %+v, %v; want %+v", job, err, want)
	}

	for _, out := range []string{"", "43|alice|1000|chem|2000|gpu|acct|/w\n",
		"42|alice|x|chem|2000|gpu|acct|/w\n"} {
		tools := Tools{Squeue: fakeCommand(t, out, 0)}
		if job, err := tools.LookupJob(context.Background(), "42"); err == nil {
			t.Errorf("squeue printing %q: got %+v, want an error", out, job)
		}
	}
	if _, err := (Tools{}).LookupJob(context.Background(), "42; rm"); err == nil {
		t.Error("a bad job id was accepted")
	}
}

func TestBatchScript(t *testing.T) {
	tools := Tools{Scontrol: fakeCommand(t, "#!/bin/sh\napptainer run a.sif\n", 0)}
	text, err := tools.BatchScript(context.Background(), "7")
	if err != nil || text != "#!/bin/sh\napptainer run a.sif\n" {
		t.Errorf("BatchScript = %q, %v", text, err)
	}
	dir := t.TempDir()
	none := filepath.Join(dir, "scontrol")
	os.WriteFile(none, []byte("#!/bin/sh\necho 'job 7 has No batch script' >&2\nexit 1\n"),
		0o755)
	if _, err := (Tools{Scontrol: none}).BatchScript(context.Background(), "7"); err !=
		ErrNoScript {
		t.Errorf("an allocation without a script: %v, want ErrNoScript", err)
	}
}

func TestDecideWithoutGate(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.sif")
	os.WriteFile(img, []byte("not checked"), 0o644)
	p := policy.Default()
	var recorded []string
	c := &Checker{Policy: p, Unavailable: os.ErrPermission,
		Record: func(res gate.Result, who policy.Subject) {
			recorded = append(recorded, who.Image+" "+string(res.Action))
		}}
	found := launch.FromArgv([]string{"apptainer", "exec", "a.sif", "x"})
	found.Unresolved = append(found.Unresolved, "$IMG")
	a := c.Decide(context.Background(), Launch{Found: found, Dir: dir,
		Who: policy.Subject{User: "alice"}, Option: Option{Report: true}, Watching: true})
	if a.Action != policy.Block || !a.Watch || len(a.Images) != 1 || a.Images[0].Path !=
		"a.sif" {
		t.Errorf("answer %+v", a)
	}
	var st unix.Stat_t
	if err := unix.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if want := image.FileIDOf(&st); a.Images[0].ID != want {
		t.Errorf("checked image %+v, want %+v: size and times too", a.Images[0].ID, want)
	}
	wantMessages := []string{
		"image " + img + " blocked: no decision could be made (permission denied); next " +
			"step: " + p.Message.NoDecisionStep,
		"the image of $IMG cannot be named before the job runs; it is checked when its " +
			"container starts",
	}
	if !slices.Equal(a.Messages, wantMessages) {
		t.Errorf("messages:\n%q\nwant:\n%q", a.Messages, wantMessages)
	}
	if !slices.Equal(recorded, []string{img + " block"}) {
		t.Errorf("recorded %q", recorded)
	}

	// A sandbox directory may change inside after the check: the watch follows it.
	sandbox := filepath.Join(dir, "sandbox")
	os.Mkdir(sandbox, 0o755)
	dirAnswer := c.Decide(context.Background(), Launch{Found: launch.FromArgv([]string{
		"apptainer", "exec", sandbox, "id"}), Dir: dir})
	if !dirAnswer.Watch || len(dirAnswer.Images) != 1 || len(dirAnswer.Unresolved) != 0 {
		t.Errorf("a sandbox directory: %+v", dirAnswer)
	}

	// An image that does not exist yet is left to the watch.
	missing := c.Decide(context.Background(), Launch{Found: launch.FromArgv([]string{
		"apptainer", "run", "later.sif"}), Dir: dir})
	if missing.Action != policy.Allow || !missing.Watch || len(missing.Images) != 0 ||
		!slices.Equal(missing.Unresolved, []string{"later.sif"}) {
		t.Errorf("a missing image: %+v", missing)
	}
}
