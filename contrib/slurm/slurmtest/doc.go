// Package slurmtest holds the integration tests of the Slurm launch points: they start a
// real Slurm (munged, slurmctld, slurmd from Debian's slurm-wlm) on this machine, in
// temporary directories, load the scan-gate SPANK plugin (or a PrologSlurmctld script),
// run jobs as an unprivileged user with a real trivy, and check what users see.
//
// The tests need root, slurm-wlm, munge, libslurm-dev and a C compiler; they skip without
// them unless SCAN_GATE_REQUIRE_SCANNERS=1 or SCAN_GATE_REQUIRE_SLURM=1 is set, as in CI.
package slurmtest
