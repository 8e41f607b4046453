package cache

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExportImport(t *testing.T) {
	src := newStore(t, Options{})
	for i := range 3 {
		if err := src.Put(testKey(i), testEntry(testKey(i), i+1)); err != nil {
			t.Fatal(err)
		}
	}
	var archive bytes.Buffer
	out, err := src.Export(&archive, ExportOptions{
		Keep: func(e Entry) bool { return e.Key != testKey(2) }})
	if err != nil || out.Exported != 2 {
		t.Fatalf("Export = %+v, %v; want 2 entries", out, err)
	}

	dst := newStore(t, Options{})
	res, err := dst.Import(bytes.NewReader(archive.Bytes()), ImportOptions{})
	if err != nil || res.Imported != 2 || res.Kept != 0 || len(res.Rejected) != 0 {
		t.Fatalf("Import = %+v, %v; want 2 imported", res, err)
	}
	for i := range 2 {
		got, err := dst.Get(testKey(i))
		if err != nil {
			t.Fatal(err)
		}
		if want := testEntry(testKey(i), i+1); !reflect.DeepEqual(got, want) {
			t.Errorf("imported entry %d = %+v, want %+v", i, got, want)
		}
	}
	if _, err := dst.Get(testKey(2)); !errors.Is(err, ErrMiss) {
		t.Errorf("entry left out of the export was imported: %v", err)
	}

	// A second import finds the same scans already there: present, not "kept newer".
	res, err = dst.Import(bytes.NewReader(archive.Bytes()), ImportOptions{})
	if err != nil || res.Imported != 0 || res.Present != 2 || res.Kept != 0 {
		t.Errorf("re-import = %+v, %v; want 2 already present", res, err)
	}

	// A newer local scan is kept; an older one is replaced.
	newer := testEntry(testKey(0), 0)
	newer.Scan.ScannedAt = newer.Scan.ScannedAt.Add(time.Hour)
	older := testEntry(testKey(1), 0)
	older.Scan.ScannedAt = older.Scan.ScannedAt.Add(-time.Hour)
	for _, e := range []*Entry{newer, older} {
		if err := dst.Put(e.Key, e); err != nil {
			t.Fatal(err)
		}
	}
	res, err = dst.Import(bytes.NewReader(archive.Bytes()), ImportOptions{})
	if err != nil || res.Imported != 1 || res.Kept != 1 || res.Present != 0 {
		t.Errorf("import over newer and older = %+v, %v; want 1 imported, 1 kept", res, err)
	}
	if got, _ := dst.Get(testKey(0)); len(got.Scan.Findings) != 0 {
		t.Error("import replaced a newer local scan")
	}
	if got, _ := dst.Get(testKey(1)); len(got.Scan.Findings) != 2 {
		t.Error("import kept an older local scan")
	}
}

// Corrupt members are rejected one by one; the sound ones still come in.
func TestImportRejects(t *testing.T) {
	src := newStore(t, Options{})
	good, flipped, renamed := testKey(1), testKey(2), testKey(3)
	for _, k := range []Key{good, flipped, renamed} {
		if err := src.Put(k, testEntry(k, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var archive bytes.Buffer
	if _, err := src.Export(&archive, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	doctored := rewriteArchive(t, archive.Bytes(), func(name string, data []byte) (string,
		[]byte) {
		switch name {
		case "entries/" + flipped.Name() + ".entry":
			data = bytes.Replace(data, []byte("openssl"), []byte("openssm"), 1)
		case "entries/" + renamed.Name() + ".entry":
			name = "entries/" + testKey(9).Name() + ".entry"
		}
		return name, data
	}, map[string][]byte{"etc/passwd": []byte("root:x:0:0\n")})

	dst := newStore(t, Options{})
	res, err := dst.Import(bytes.NewReader(doctored), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 1 || len(res.Rejected) != 3 {
		t.Fatalf("Import = %+v; want 1 imported, 3 rejected", res)
	}
	joined := errors.Join(res.Rejected...).Error()
	for _, want := range []string{"checksum mismatch", "another key", "not a cache entry"} {
		if !strings.Contains(joined, want) {
			t.Errorf("rejections %q do not say %q", joined, want)
		}
	}
	if _, err := dst.Get(good); err != nil {
		t.Errorf("sound entry not imported: %v", err)
	}

	if _, err := dst.Import(strings.NewReader("not an archive"), ImportOptions{}); err == nil {
		t.Error("importing garbage succeeded")
	}
	readOnly, err := Open(dst.Dir(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readOnly.Import(bytes.NewReader(archive.Bytes()),
		ImportOptions{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("import into a read-only cache: %v", err)
	}
}

// rewriteArchive passes every member of an export through change and appends extra files.
func rewriteArchive(t *testing.T, archive []byte, change func(string, []byte) (string,
	[]byte), extra map[string][]byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	write := func(name string, data []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)),
			Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		write(change(hdr.Name, data))
	}
	for name, data := range extra {
		write(name, data)
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}

// Keys are made with a secret of each cache's own: an export rekeys its entries to the
// archive's secret, which the manifest carries, and an import rekeys them to this cache's.
func TestExportImportRekey(t *testing.T) {
	src := newStore(t, Options{})
	for i := range 3 {
		src.Put(testKey(i), testEntry(testKey(i), 1))
	}
	archiveSecret := []byte("archive secret of sixteen bytes+")
	var archive bytes.Buffer
	out, err := src.Export(&archive, ExportOptions{Secret: archiveSecret,
		Rekey: func(e *Entry) error {
			if e.Key == testKey(1) {
				return errors.New("image changed since it was scanned")
			}
			e.Key.Content = "archive-" + e.Key.Content
			return nil
		}})
	if err != nil || out.Exported != 2 || len(out.Left) != 1 {
		t.Fatalf("Export = %+v, %v; want 2 exported, 1 left out", out, err)
	}

	dst := newStore(t, Options{})
	var secrets []string
	res, err := dst.Import(bytes.NewReader(archive.Bytes()), ImportOptions{
		Rekey: func(e *Entry, secret []byte) error {
			secrets = append(secrets, string(secret))
			content, ok := strings.CutPrefix(e.Key.Content, "archive-")
			if !ok || content == testKey(2).Content {
				return errors.New("no such image here")
			}
			e.Key.Content = "here-" + content
			return nil
		}})
	if err != nil || res.Imported != 1 || len(res.Rejected) != 1 ||
		!strings.Contains(res.Rejected[0].Error(), "no such image here") {
		t.Fatalf("Import = %+v, %v; want 1 imported, 1 rejected", res, err)
	}
	if len(secrets) != 2 || secrets[0] != string(archiveSecret) {
		t.Errorf("Rekey saw secrets %q", secrets)
	}
	want := testKey(0)
	want.Content = "here-" + want.Content
	if _, err := dst.Get(want); err != nil {
		t.Errorf("rekeyed entry: %v", err)
	}
}
