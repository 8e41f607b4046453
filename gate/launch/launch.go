// Package launch reads apptainer and singularity command lines, and shell scripts that run
// them, without running anything, and says which container images they would start.
//
// Parse reads one runtime command line strictly, as the apptainer wrapper needs: an option
// it does not know is an error. FromArgv and FromScript read a job step's argv or a batch
// script leniently, as the Slurm plugin needs: they find every launch they can name, and
// report what they cannot name before the job runs (an image in a variable set at run time,
// a glob, a remote URI, a relative path after a cd) as unresolved, for the post-launch watch.
package launch

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of Parse, wrapped with the option or command they concern.
var (
	ErrUnknownOption = errors.New("unknown option")
	ErrMissingValue  = errors.New("option needs a value")
	ErrNoImage       = errors.New("no image given")
)

// Launch is what one runtime command line starts.
type Launch struct {
	// Command is "exec", "run", "shell", "test", "instance start" or "instance run"; empty
	// when the command line starts no container (build, pull, help, ...).
	Command string
	// Image is the image operand as written: a path, a URI (docker://...) or an instance
	// (instance://name). Empty when Command is.
	Image string
	// ImageIndex is the index of Image in the argv given to Parse.
	ImageIndex int
}

// actionCommands are the commands that start a container from an image operand.
var actionCommands = map[string]bool{"exec": true, "run": true, "shell": true, "test": true}

// Parse reads argv, an apptainer or singularity command line with the program name first,
// and returns what it starts. A command line that starts nothing is not an error: its
// Launch has an empty Command.
func Parse(argv []string) (Launch, error) {
	if len(argv) == 0 {
		return Launch{}, errors.New("empty command line")
	}
	i, err := skipOptions(argv, 1, globalOptions)
	if err != nil || i >= len(argv) {
		return Launch{}, err
	}

	command := argv[i]
	opts := actionOptions
	switch {
	case command == "shell":
		opts = shellOptions
	case actionCommands[command]:
	case command == "instance":
		i, err = skipOptions(argv, i+1, inheritedOptions)
		if err != nil || i >= len(argv) {
			return Launch{}, err
		}
		if argv[i] != "start" && argv[i] != "run" {
			return Launch{}, nil // instance list, stop, stats, ...
		}
		command = "instance " + argv[i]
		opts = instanceOptions
	default:
		return Launch{}, nil
	}

	i, err = skipOptions(argv, i+1, opts)
	if err != nil {
		return Launch{}, err
	}
	if i >= len(argv) {
		return Launch{}, fmt.Errorf("%s: %w", command, ErrNoImage)
	}
	return Launch{Command: command, Image: argv[i], ImageIndex: i}, nil
}

// skipOptions returns the index of the first operand at or after argv[i]: the options of
// the set and their values are skipped, and "--" ends the options.
func skipOptions(argv []string, i int, opts optionSet) (int, error) {
	for i < len(argv) {
		word := argv[i]
		switch {
		case word == "--":
			return i + 1, nil
		case strings.HasPrefix(word, "--"):
			name, _, attached := strings.Cut(word[2:], "=")
			kind, known := opts.long[name]
			switch {
			case attached:
				// --name=value carries its own value, whether the option is known or not.
			case !known:
				return 0, fmt.Errorf("%w %s", ErrUnknownOption, word)
			case kind == takesValue:
				if i+1 >= len(argv) {
					return 0, fmt.Errorf("%w: %s", ErrMissingValue, word)
				}
				i++
			}
		case strings.HasPrefix(word, "-") && word != "-":
			consumed, err := skipShortCluster(argv, i, opts)
			if err != nil {
				return 0, err
			}
			i += consumed
		default:
			return i, nil
		}
		i++
	}
	return i, nil
}

// skipShortCluster reads "-abc", "-B value", "-Bvalue" or "-B=value" at argv[i] and returns
// how many words after it were taken as a value (0 or 1).
func skipShortCluster(argv []string, i int, opts optionSet) (int, error) {
	letters := argv[i][1:]
	for j := 0; j < len(letters); j++ {
		kind, known := opts.short[letters[j]]
		if !known {
			return 0, fmt.Errorf("%w -%c", ErrUnknownOption, letters[j])
		}
		if kind != takesValue {
			continue
		}
		if j+1 < len(letters) {
			return 0, nil // the rest of the cluster is the value
		}
		if i+1 >= len(argv) {
			return 0, fmt.Errorf("%w: -%c", ErrMissingValue, letters[j])
		}
		return 1, nil
	}
	return 0, nil
}

// ImagesFromArgv returns the images a runtime command line starts, as written: none for a
// command that starts nothing or runs on an existing instance (instance://); remote URIs
// (docker://, oras://, ...) are returned as they are, for the caller to refuse or fetch.
func ImagesFromArgv(argv []string) ([]string, error) {
	l, err := Parse(argv)
	if err != nil || l.Command == "" || Scheme(l.Image) == "instance" {
		return nil, err
	}
	return []string{l.Image}, nil
}

// transports are the image sources the runtimes know written "name:..." without "//".
var transports = map[string]bool{"docker-archive": true, "docker-daemon": true, "oci": true,
	"oci-archive": true, "oci-sif": true}

// Scheme returns the lower-cased source of an image reference ("docker" for
// docker://alpine, "docker-archive" for docker-archive:x.tar, "instance" for
// instance://web), or "" for a local path.
func Scheme(ref string) string {
	if before, _, ok := strings.Cut(ref, "://"); ok && isSchemeName(before) {
		return strings.ToLower(before)
	}
	if before, _, ok := strings.Cut(ref, ":"); ok && transports[strings.ToLower(before)] {
		return strings.ToLower(before)
	}
	return ""
}

// isSchemeName reports whether s can be a URI scheme: a letter, then letters, digits, "+",
// "-" or ".".
func isSchemeName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if i == 0 && !letter {
			return false
		}
		if !letter && !(r >= '0' && r <= '9') && r != '+' && r != '-' && r != '.' {
			return false
		}
	}
	return true
}
