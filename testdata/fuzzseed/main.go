// Command fuzzseed writes the checked-in seed corpora of the fuzz targets FuzzOpen
// (gate/image), FuzzParse (policy) and FuzzParseReport (gate/scanner/trivy): real SIF and
// squashfs files kept small, whole, cut and broken; every policy the testscript scripts use;
// and real Trivy reports with their edge cases. Run it from the repository root when the
// formats change, and commit what it writes:
//
//	go run ./testdata/fuzzseed
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/txtar"
	"github.com/sylabs/sif/v2/pkg/sif"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fuzzseed:", err)
		os.Exit(1)
	}
}

func run() error {
	for _, write := range []func() error{sifSeeds, policySeeds, reportSeeds} {
		if err := write(); err != nil {
			return err
		}
	}
	return nil
}

// writeSeeds replaces the corpus of target in pkg with seeds, one file each, in the
// `go test fuzz v1` format of a single []byte argument.
func writeSeeds(pkg, target string, seeds map[string][]byte) error {
	dir := filepath.Join(pkg, "testdata", "fuzz", target)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("%s: %d seeds\n", dir, len(seeds))
	return nil
}

// sifSeeds are small images: a one-file squashfs, unpadded, in SIFs with few descriptor
// slots and 8-byte alignment, so that the fuzzer mutates structure rather than padding.
func sifSeeds() error {
	work, err := os.MkdirTemp("", "fuzzseed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/debian_version"), []byte("12.5\n"),
		0o644); err != nil {
		return err
	}
	squash := filepath.Join(work, "fs.squashfs")
	if err := testimage.Squashfs(context.Background(), root, squash); err != nil {
		return err
	}
	fs, err := os.ReadFile(squash)
	if err != nil {
		return err
	}
	// The squashfs superblock says how many bytes it uses; the rest is padding.
	fs = fs[:binary.LittleEndian.Uint64(fs[40:48])]

	part := func(data []byte, fsType sif.FSType, pt sif.PartType) object {
		return object{data, sif.DataPartition, fsType, pt}
	}
	seeds := map[string][]byte{
		"squashfs":           fs,
		"squashfs-truncated": fs[:len(fs)/2],
		"not-an-image":       []byte("This is a text file, not a container image.\n"),
		"empty":              nil,
		"sif-magic-only":     append(make([]byte, 32), []byte("SIF_MAGIC\x00")...),
	}
	primary := part(fs, sif.FsSquash, sif.PartPrimSys)
	images := map[string][]object{
		"sif":            {primary},
		"sif-overlay":    {primary, part(fs, sif.FsSquash, sif.PartOverlay)},
		"sif-ext3":       {primary, part(make([]byte, 64), sif.FsExt3, sif.PartOverlay)},
		"sif-encrypted":  {part(fs, sif.FsEncryptedSquashfs, sif.PartPrimSys)},
		"sif-no-primary": {part(fs, sif.FsSquash, sif.PartSystem)},
		"sif-oci": {{[]byte(`{"schemaVersion":2}`), sif.DataOCIRootIndex, 0, 0},
			{fs, sif.DataOCIBlob, 0, 0}},
		"sif-signed": {primary,
			{[]byte("-----BEGIN PGP SIGNED MESSAGE-----\n"), sif.DataSignature, 0, 0}},
	}
	for name, objects := range images {
		data, err := buildSIF(objects)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		seeds[name] = data
	}
	whole := seeds["sif"]
	seeds["sif-truncated"] = whole[:len(whole)-len(fs)/2]
	seeds["sif-header-only"] = whole[:128]
	seeds["sif-past-end"] = patched(whole, descriptor(whole, 0)+17, 4096, 1<<40)
	seeds["sif-negative-size"] = patched(whole, descriptor(whole, 0)+25, 1<<63)
	seeds["sif-huge-count"] = patched(whole, 88, 1<<40)
	seeds["sif-table-past-end"] = patched(whole, 96, 1<<40)
	seeds["sif-two-primaries"] = patched(seeds["sif-overlay"],
		descriptor(seeds["sif-overlay"], 1)+4+1+4+4+4+7*8+128+4, uint64(sif.PartPrimSys))
	return writeSeeds("gate/image", "FuzzOpen", seeds)
}

type object struct {
	data   []byte
	typ    sif.DataType
	fsType sif.FSType
	part   sif.PartType
}

func buildSIF(objects []object) ([]byte, error) {
	var inputs []sif.DescriptorInput
	for _, o := range objects {
		opts := []sif.DescriptorInputOpt{sif.OptObjectAlignment(8),
			sif.OptObjectTime(time.Unix(1700000000, 0))}
		switch o.typ {
		case sif.DataPartition:
			opts = append(opts, sif.OptPartitionMetadata(o.fsType, o.part, "amd64"))
		case sif.DataSignature:
			opts = append(opts, sif.OptSignatureMetadata(0, make([]byte, 20)), sif.OptLinkedID(1))
		}
		di, err := sif.NewDescriptorInput(o.typ, bytes.NewReader(o.data), opts...)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, di)
	}
	var buf sif.Buffer
	f, err := sif.CreateContainer(&buf, sif.OptCreateWithDescriptors(inputs...),
		sif.OptCreateWithDescriptorCapacity(int64(len(inputs))),
		sif.OptCreateDeterministic(), sif.OptCreateWithTime(time.Unix(1700000000, 0)))
	if err != nil {
		return nil, err
	}
	if err := f.UnloadContainer(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// descriptor is the offset of the index-th descriptor in a SIF.
func descriptor(image []byte, index int) int {
	return int(binary.LittleEndian.Uint64(image[96:])) + index*585
}

// patched returns a copy of image with little-endian 64-bit values written from at on.
func patched(image []byte, at int, values ...uint64) []byte {
	out := bytes.Clone(image)
	for i, v := range values {
		binary.LittleEndian.PutUint64(out[at+8*i:], v)
	}
	return out
}

// policySeeds are every policy file of the testscript scripts and the annotated example.
func policySeeds() error {
	seeds := map[string][]byte{}
	example, err := os.ReadFile("policy/example.toml")
	if err != nil {
		return err
	}
	seeds["example"] = example
	scripts, err := filepath.Glob("testdata/script/*.txtar")
	if err != nil {
		return err
	}
	for _, script := range scripts {
		ar, err := txtar.ParseFile(script)
		if err != nil {
			return err
		}
		for _, f := range ar.Files {
			if !strings.HasSuffix(f.Name, ".toml") {
				continue
			}
			name := strings.TrimSuffix(filepath.Base(script), ".txtar") + "-" +
				strings.TrimSuffix(filepath.Base(f.Name), ".toml")
			// Test paths are placeholders; the fuzzer needs only the shape.
			seeds[name] = regexp.MustCompile(`\$[A-Z_]+`).ReplaceAll(f.Data, []byte("/x"))
		}
	}
	return writeSeeds("policy", "FuzzParse", seeds)
}

// reportSeeds are Trivy reports: the real one checked in, and the shapes the parser and the
// guard must tell apart.
func reportSeeds() error {
	real, err := os.ReadFile("gate/scanner/trivy/testdata/debian12-vulnerable.json")
	if err != nil {
		return err
	}
	seeds := map[string][]byte{
		"debian12-vulnerable": real,
		"nothing-found":       []byte(`{"SchemaVersion": 2, "ArtifactName": "/r"}`),
		"os-none": []byte(`{"SchemaVersion": 2, "Metadata": {"OS": ` +
			`{"Family": "none"}}}`),
		"os-without-packages": []byte(`{"SchemaVersion": 2, "Metadata": {"OS": {"Family": ` +
			`"debian", "Name": "12.5"}}, "Results": [{"Target": "r (debian 12.5)", "Class": ` +
			`"os-pkgs", "Type": "debian"}]}`),
		"clean-with-packages": []byte(`{"SchemaVersion": 2, "Metadata": {"OS": {"Family": ` +
			`"debian", "Name": "12.5"}}, "Results": [{"Target": "r (debian 12.5)", "Class": ` +
			`"os-pkgs", "Type": "debian", "Packages": [{"Name": "libc6", "Version": ` +
			`"2.36-9+deb12u14"}]}]}`),
		"schema-3":     []byte(`{"SchemaVersion": 3, "Results": []}`),
		"results-null": []byte(`{"SchemaVersion": 2, "Results": null}`),
		"result-empty": []byte(`{"SchemaVersion": 2, "Metadata": {"OS": null}, ` +
			`"Results": [{}]}`),
		"no-id": []byte(`{"SchemaVersion": 2, "Results": [{"Vulnerabilities": ` +
			`[{"PkgName": "x"}]}]}`),
		"fixes-listed": []byte(`{"SchemaVersion": 2, "Results": [{"Target": ` +
			`"usr/lib/python3", "Class": "lang-pkgs", "Type": "python-pkg", ` +
			`"Vulnerabilities": [{"VulnerabilityID": "GHSA-j8r2-6x86-q33q", ` +
			`"VendorIDs": ["CVE-2023-32681"], "PkgName": "requests", ` +
			`"InstalledVersion": "2.25.0", "FixedVersion": " 2.31.0, , 3.0.0 ,", "Status": ` +
			`"fixed", "Severity": "MEDIUM", "VendorSeverity": {"ghsa": 2, "nvd": 3}}]}]}`),
		"odd-severity": []byte(`{"SchemaVersion": 2, "Results": [{"Class": "os-pkgs", ` +
			`"Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "p", "Severity": ` +
			`"catastrophic", "Status": "will_not_fix"}, {"VulnerabilityID": "CVE-2", "PkgName": ` +
			`"p", "Severity": "", "Status": "affected", "FixedVersion": ""}]}]}`),
		"empty": nil,
		"open":  []byte("{"),
	}
	return writeSeeds("gate/scanner/trivy", "FuzzParseReport", seeds)
}
