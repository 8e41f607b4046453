package launch

import (
	"path"
	"strconv"
	"strings"
)

// Found is what a job step's command line or a batch script launches.
type Found struct {
	// Images are the local images named literally, as written (a relative path stays
	// relative), in order of first appearance, each once.
	Images []string `json:"images,omitempty"`
	// Unresolved are the launches whose image cannot be named before the job runs, as
	// written: a variable set at run time, a command substitution, a glob, a remote URI
	// (docker://...), a relative path after a cd, a shell command held in a variable, an
	// eval of words known only at run time, a sourced file outside /etc and /usr, or a
	// runtime command line with an option this package does not know.
	Unresolved []string `json:"unresolved,omitempty"`
}

// Empty reports whether nothing was found: no container launch can be seen.
func (f Found) Empty() bool { return len(f.Images) == 0 && len(f.Unresolved) == 0 }

func (f *Found) addImage(image string) {
	if !contains(f.Images, image) {
		f.Images = append(f.Images, image)
	}
}

func (f *Found) addUnresolved(raw string) {
	const longest = 200 // a whole command line can land here; keep messages readable
	if len(raw) > longest {
		raw = raw[:longest] + "..."
	}
	if !contains(f.Unresolved, raw) {
		f.Unresolved = append(f.Unresolved, raw)
	}
}

func (f *Found) merge(g Found) {
	for _, image := range g.Images {
		f.addImage(image)
	}
	for _, raw := range g.Unresolved {
		f.addUnresolved(raw)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// FromArgv finds the launches of one command line, such as a job step's argv: an apptainer
// or singularity command anywhere in it (after srun, mpirun, env, time, ...), an image run
// directly (./app.sif), or a script given to `sh -c`.
func FromArgv(argv []string) Found {
	words := make([]arg, len(argv))
	for i, a := range argv {
		words[i] = arg{values: []string{a}, raw: a}
	}
	var found Found
	scanCommand(words, false, &found)
	return found
}

// FromScript finds the launches of a shell script, such as a Slurm batch script.
func FromScript(text string) Found {
	return scanScript(text, false)
}

// ImagesFromScript returns the local images the shell script text launches, as written.
func ImagesFromScript(text string) []string { return FromScript(text).Images }

// arg is one word of a command with what can be known of its value before it runs: the
// values it may take (one for a literal word; several for a variable assigned more than
// once), or none when it is only known at run time.
type arg struct {
	values []string
	raw    string
}

func (a arg) literal() (string, bool) {
	if len(a.values) == 1 {
		return a.values[0], true
	}
	return "", false
}

// runtimes are the programs whose command line names an image.
var runtimes = map[string]bool{"apptainer": true, "singularity": true}

// shells are the programs whose -c option takes a script.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true,
	"ksh": true, "mksh": true}

// scanCommand finds the launches of one simple command. afterCd says that relative paths
// may no longer resolve against the job's working directory.
func scanCommand(words []arg, afterCd bool, found *Found) {
	if len(words) == 0 {
		return
	}
	if first, ok := words[0].literal(); ok && isImageFile(first) {
		addImage(words[0], afterCd, found) // an image run directly: ./app.sif
		return
	}
	for i, w := range words {
		value, ok := w.literal()
		switch {
		case ok && value == "eval":
			scanEval(words[i+1:], afterCd, found)
			return
		case ok && (value == "source" || value == ".") && atCommand(words[:i]):
			scanSourced(words[i:], found)
			return
		case !ok && mentionsRuntime(w.raw) && i == len(words)-1:
			found.addUnresolved(w.raw) // eval "apptainer exec $IMG"
			return
		case !ok && mentionsRuntime(w.raw):
			// "$APPTAINER" exec img: the program is not known, the shape is a launch.
			scanRuntime(words[i:], afterCd, found)
			return
		case !ok:
		case runtimes[path.Base(value)]:
			scanRuntime(words[i:], afterCd, found)
			return
		case path.Base(value) == "run-singularity":
			if i+1 < len(words) {
				addImage(words[i+1], afterCd, found)
			}
			return
		case shells[path.Base(value)]:
			script, ok := shellScript(words[i+1:])
			if !ok {
				continue
			}
			if text, literal := script.literal(); literal {
				found.merge(scanScript(text, afterCd))
			} else {
				found.addUnresolved(script.raw) // sh -c "$CMD" may run anything
			}
			return
		}
	}
}

// scanEval reads `eval ARGS...`: the shell joins the arguments with spaces and runs the
// result as a script. Arguments known only at run time make the whole of it unresolved,
// whatever they mention: eval "$CMD" may run anything.
func scanEval(args []arg, afterCd bool, found *Found) {
	texts := make([]string, len(args))
	for i, a := range args {
		text, ok := a.literal()
		if !ok {
			found.addUnresolved(joinRaw(args))
			return
		}
		texts[i] = text
	}
	found.merge(scanScript(strings.Join(texts, " "), afterCd))
}

// trustedSourced are the directories whose scripts a job may source without making the
// job unresolved: only root can write them, and sites keep their module setup there.
var trustedSourced = []string{"/etc/", "/usr/"}

// scanSourced reads `source FILE` or `. FILE`: the file is read only when the job runs,
// and may launch anything, so the launch is unresolved unless the file is a system one.
func scanSourced(words []arg, found *Found) {
	if len(words) > 1 {
		if file, ok := words[1].literal(); ok && path.Clean(file) == file {
			for _, dir := range trustedSourced {
				if strings.HasPrefix(file, dir) {
					return
				}
			}
		}
	}
	found.addUnresolved(joinRaw(words))
}

// commandPrefixes are the words after which the next word is still in command position.
var commandPrefixes = map[string]bool{"exec": true, "command": true, "builtin": true,
	"time": true, "!": true, "if": true, "then": true, "else": true, "elif": true,
	"do": true, "while": true, "until": true}

// atCommand reports whether the word after before is in command position, so that `.`
// there is the shell's source and not, say, the operand of `ls .`.
func atCommand(before []arg) bool {
	for _, w := range before {
		if value, ok := w.literal(); !ok || !commandPrefixes[value] {
			return false
		}
	}
	return true
}

// shellScript returns the script of `sh [options] -c SCRIPT`.
func shellScript(words []arg) (arg, bool) {
	for i, w := range words {
		value, ok := w.literal()
		if !ok || !strings.HasPrefix(value, "-") || value == "-" || value == "--" {
			return arg{}, false
		}
		if !strings.HasPrefix(value, "--") && strings.Contains(value[1:], "c") {
			if i+1 < len(words) {
				return words[i+1], true
			}
			return arg{}, false
		}
	}
	return arg{}, false
}

// scanRuntime reads a runtime command line whose words may be known only at run time. A
// word not known yet stands as an operand, so an image after `-B "$DATA"` is still found,
// while `exec "$OPTS" img` reports the launch as unresolved.
func scanRuntime(words []arg, afterCd bool, found *Found) {
	argv := make([]string, len(words))
	argv[0] = "apptainer"
	for i := 1; i < len(words); i++ {
		if value, ok := words[i].literal(); ok {
			argv[i] = value
		} else {
			argv[i] = unknownWord + strconv.Itoa(i)
		}
	}
	l, err := Parse(argv)
	if err != nil {
		found.addUnresolved(joinRaw(words))
		return
	}
	if l.Command == "" {
		// The command itself may be a variable: apptainer "$ACTION" img.
		if i, err := skipOptions(argv, 1, globalOptions); err == nil && i < len(argv) &&
			strings.HasPrefix(argv[i], unknownWord) {
			found.addUnresolved(joinRaw(words))
		}
		return
	}
	addImage(words[l.ImageIndex], afterCd, found)
}

// unknownWord marks a word known only at run time in the argv given to Parse; no option or
// path starts with a NUL byte.
const unknownWord = "\x00"

func joinRaw(words []arg) string {
	raws := make([]string, len(words))
	for i, w := range words {
		raws[i] = w.raw
	}
	return strings.Join(raws, " ")
}

func mentionsRuntime(raw string) bool {
	lower := strings.ToLower(raw)
	return strings.Contains(lower, "apptainer") || strings.Contains(lower, "singularity")
}

func isImageFile(name string) bool {
	return strings.HasSuffix(name, ".sif") || strings.HasSuffix(name, ".simg")
}

// addImage records an image operand: a local path, or an unresolved launch.
func addImage(w arg, afterCd bool, found *Found) {
	if len(w.values) == 0 {
		found.addUnresolved(w.raw)
		return
	}
	for _, value := range w.values {
		scheme := Scheme(value)
		switch {
		case scheme == "instance":
			// A running instance: its image was checked when the instance started.
		case value == "":
			found.addUnresolved(w.raw)
		case scheme != "":
			found.addUnresolved(value)
		case afterCd && !strings.HasPrefix(value, "/"):
			found.addUnresolved(value)
		default:
			found.addImage(value)
		}
	}
}
