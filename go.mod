module github.com/scan-gate/scan-gate

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/gofrs/flock v0.13.2 // indirect
	github.com/rogpeppe/go-internal v1.16.0 // indirect
	github.com/sylabs/sif/v2 v2.24.2 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
