package prewarm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Job describes the Slurm array job that prewarms a targets list across the cluster.
type Job struct {
	// ScanGate is the absolute path of the scan-gate binary on the compute nodes.
	ScanGate string
	// Policy is the absolute path of the policy the tasks read; empty for the default.
	Policy string
	// TargetsFile names the list the job was made from, for the script's comment.
	TargetsFile string
	// TargetsText is the targets list, verbatim. The script carries it, so that editing
	// the file after submission cannot shift what an array index means.
	TargetsText string
	// Count is the number of targets in TargetsText (ParseTargets).
	Count int
	// Base is the directory relative paths of the list are taken from.
	Base string
	// SharedDir is the shared tier the tasks write to; empty for the policy's.
	SharedDir string
	// LogDir is where the tasks' output files go; it must be reachable from every node.
	LogDir string
	// Scratch, when set, is the node-local directory each task makes its own directory in;
	// empty leaves it to the task ($TMPDIR, and so on).
	Scratch string
	// Throttle is the most tasks running at once; 0 for no limit.
	Throttle int
	// Options are sbatch options, one per #SBATCH line.
	Options []string
	// Name is the job name; empty for "scan-gate-prewarm".
	Name string
}

// Script renders the sbatch script of the array job. Array task N runs
// `scan-gate prewarm --task N`, which prewarms the N-th target of the list carried in the
// script (comments and blank lines not counted) with its own scratch directory and scanner
// state, and writes the result into the shared tier.
func (j Job) Script(now time.Time) (string, error) {
	switch {
	case j.Count < 1:
		return "", errors.New("writing the array job: the targets list names no target")
	case !filepath.IsAbs(j.ScanGate) || !filepath.IsAbs(j.LogDir) || !filepath.IsAbs(j.Base) ||
		j.Scratch != "" && !filepath.IsAbs(j.Scratch):
		return "", errors.New("writing the array job: the scan-gate binary, the log " +
			"directory, the scratch directory and the base of relative paths must be " +
			"absolute paths")
	}
	if strings.ContainsAny(j.LogDir, " \t\r\n") {
		return "", fmt.Errorf("writing the array job: log directory %q has white space, "+
			"which #SBATCH --output cannot carry", j.LogDir)
	}
	if j.Name != "" && strings.Trim(j.Name, jobNameChars) != "" {
		return "", fmt.Errorf("writing the array job: job name %q: use letters, digits, "+
			"'-', '_' and '.'", j.Name)
	}
	for _, opt := range j.Options {
		if !strings.HasPrefix(opt, "--") || strings.ContainsAny(opt, "\r\n") {
			return "", fmt.Errorf("writing the array job: sbatch option %q: want one long "+
				"option such as --partition=admin", opt)
		}
	}
	name := j.Name
	if name == "" {
		name = "scan-gate-prewarm"
	}
	array := fmt.Sprintf("1-%d", j.Count)
	if j.Throttle > 0 {
		array += fmt.Sprintf("%%%d", j.Throttle)
	}
	delimiter, err := hereDocDelimiter(j.TargetsText)
	if err != nil {
		return "", err
	}

	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	fmt.Fprintf(&b, "# Written by scan-gate prewarm --slurm at %s from %s.\n",
		now.UTC().Format(time.RFC3339), oneLine(j.TargetsFile))
	b.WriteString("# Array task N prewarms the N-th target of the list at the end (lines\n" +
		"# starting with # and blank lines are not counted) and writes its result into\n" +
		"# the shared tier of scan results.\n")
	fmt.Fprintf(&b, "#SBATCH --job-name=%s\n", name)
	fmt.Fprintf(&b, "#SBATCH --array=%s\n", array)
	fmt.Fprintf(&b, "#SBATCH --output=%s\n", filepath.Join(j.LogDir, name+"-%A_%a.out"))
	b.WriteString("#SBATCH --ntasks=1\n")
	for _, opt := range j.Options {
		fmt.Fprintf(&b, "#SBATCH %s\n", opt)
	}
	b.WriteString("set -eu\n")

	args := []string{j.ScanGate, "prewarm"}
	if j.Policy != "" {
		args = append(args, "--policy", j.Policy)
	}
	if j.SharedDir != "" {
		args = append(args, "--shared-dir", j.SharedDir)
	}
	if j.Scratch != "" {
		args = append(args, "--scratch", j.Scratch)
	}
	args = append(args, "--base", j.Base, "--targets", "-")
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	fmt.Fprintf(&b, "exec %s --task \"$SLURM_ARRAY_TASK_ID\" <<'%s'\n",
		strings.Join(args, " "), delimiter)
	b.WriteString(j.TargetsText)
	if !strings.HasSuffix(j.TargetsText, "\n") {
		b.WriteString("\n")
	}
	b.WriteString(delimiter + "\n")
	return b.String(), nil
}

const jobNameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

// hereDocDelimiter picks a delimiter that no line of text equals.
func hereDocDelimiter(text string) (string, error) {
	var random [6]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", fmt.Errorf("writing the array job: %w", err)
	}
	delimiter := "SCAN_GATE_TARGETS_" + hex.EncodeToString(random[:])
	for _, line := range strings.Split(text, "\n") {
		if line == delimiter {
			return "", errors.New("writing the array job: the targets list holds the " +
				"here-document delimiter")
		}
	}
	return delimiter, nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"+
		"0123456789-_./=:@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}
