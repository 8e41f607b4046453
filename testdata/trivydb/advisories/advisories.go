// Package advisories lists the real, public Debian 12 security fixes that the test fixture
// vulnerability DBs hold: the Trivy DB written by testdata/trivydb and the Grype DB written
// by testdata/grypedb read this one table, so both scanners know the same advisories.
package advisories

// An Advisory is one real, public Debian security fix, as the fixture DBs record it.
//
// Every fixed version was checked against the "bookworm-security" entries of the packages'
// /usr/share/doc/*/changelog.Debian.gz on a Debian 12 machine. Severities and CVSS v3 base
// scores are NVD's.
type Advisory struct {
	ID       string
	Source   string // Debian source package: the key Debian advisories are filed under
	Fixed    string // first fixed version in Debian 12 "bookworm"
	Severity string // UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL
	Title    string
	CVSS     float64
	Vector   string
}

// Debian12 are the advisories, all for Debian 12 "bookworm".
var Debian12 = []Advisory{
	{
		ID: "CVE-2023-38545", Source: "curl", Fixed: "7.88.1-10+deb12u4", Severity: "CRITICAL",
		Title:  "curl: heap based buffer overflow in the SOCKS5 proxy handshake",
		CVSS:   9.8,
		Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
	},
	{
		ID: "CVE-2023-38546", Source: "curl", Fixed: "7.88.1-10+deb12u4", Severity: "LOW",
		Title:  "curl: cookie injection with none file",
		CVSS:   3.7,
		Vector: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:L/A:N",
	},
	{
		ID: "CVE-2024-45491", Source: "expat", Fixed: "2.5.0-1+deb12u1", Severity: "CRITICAL",
		Title:  "expat: integer overflow in dtdCopy",
		CVSS:   9.8,
		Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
	},
	{
		ID: "CVE-2024-45492", Source: "expat", Fixed: "2.5.0-1+deb12u1", Severity: "CRITICAL",
		Title:  "expat: integer overflow in function nextScaffoldPart",
		CVSS:   9.8,
		Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
	},
	{
		ID: "CVE-2023-4911", Source: "glibc", Fixed: "2.36-9+deb12u3", Severity: "HIGH",
		Title: "glibc: buffer overflow in ld.so leading to privilege escalation " +
			"(Looney Tunables, GLIBC_TUNABLES)",
		CVSS:   7.8,
		Vector: "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H",
	},
	{
		ID: "CVE-2023-4863", Source: "libwebp", Fixed: "1.2.4-0.2+deb12u1", Severity: "HIGH",
		Title:  "libwebp: heap buffer overflow in WebP lossless decoding",
		CVSS:   8.8,
		Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H",
	},
	{
		ID: "CVE-2023-5363", Source: "openssl", Fixed: "3.0.11-1~deb12u2", Severity: "HIGH",
		Title:  "openssl: incorrect cipher key and IV length processing",
		CVSS:   7.5,
		Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
	},
}
