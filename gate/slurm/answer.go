package slurm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/policy"
)

// The helper answers the SPANK plugin on its standard output, one line per item, each line
// a keyword, a space and the rest of the line:
//
//	scan-gate-spank 2          the protocol and its version, first
//	image DEV INO SIZE MTIME_NS CTIME_NS PATH
//	                           an image that was checked: the plugin opens PATH (as
//	                           written, relative to the task's working directory) as the
//	                           job's user when the task starts, and refuses the launch
//	                           unless it is the same file, unchanged: device, inode, size,
//	                           and modification and change times in nanoseconds, decimal
//	                           (a file rewritten in place keeps its inode, never its
//	                           change time)
//	message TEXT               a line for the job's stderr, in order
//	watch yes|no               whether the post-launch watch should start
//	action allow|audit|warn|block
//	end                        the answer is complete
//
// A reader ignores keywords it does not know. An answer without "end", or with another
// protocol version, is no answer: the plugin treats it as a failure of the helper. Text
// never holds a newline (the helper replaces any with a space).

// ProtocolHeader is the first line of every answer.
// Version 2 added size and times to "image": a plugin of version 1 would check less.
const ProtocolHeader = "scan-gate-spank 2"

// Checked is an image that was checked, as the plugin verifies it at task start.
type Checked struct {
	// Path is the image as the job wrote it.
	Path string
	// ID is the file as it was before the check; the task must find it unchanged.
	ID image.FileID
}

// Answer is the decision on one step, as the plugin needs it.
type Answer struct {
	Action   policy.Action
	Watch    bool
	Images   []Checked
	Messages []string
	// Unresolved and Results are not sent to the plugin; they are for the helper's log.
	Unresolved []string      `json:"-"`
	Results    []gate.Result `json:"-"`
}

// Write writes the answer in the plugin's protocol.
func (a Answer) Write(w io.Writer) error {
	var b strings.Builder
	b.WriteString(ProtocolHeader + "\n")
	for _, im := range a.Images {
		fmt.Fprintf(&b, "image %d %d %d %d %d %s\n", im.ID.Dev, im.ID.Ino, im.ID.Size,
			im.ID.MtimeNs, im.ID.CtimeNs, oneLine(im.Path))
	}
	for _, m := range a.Messages {
		fmt.Fprintf(&b, "message %s\n", oneLine(m))
	}
	watch := "no"
	if a.Watch {
		watch = "yes"
	}
	fmt.Fprintf(&b, "watch %s\naction %s\nend\n", watch, a.Action)
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ", "\x00", " ").Replace(s)
}

// ReadAnswer reads an answer in the plugin's protocol, as the plugin does.
func ReadAnswer(r io.Reader) (Answer, error) {
	var a Answer
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() || sc.Text() != ProtocolHeader {
		return Answer{}, fmt.Errorf("reading answer: want %q first", ProtocolHeader)
	}
	for sc.Scan() {
		key, rest, _ := strings.Cut(sc.Text(), " ")
		switch key {
		case "image":
			im, err := parseImage(rest)
			if err != nil {
				return Answer{}, fmt.Errorf("reading answer: bad image line %q: %w",
					sc.Text(), err)
			}
			a.Images = append(a.Images, im)
		case "message":
			a.Messages = append(a.Messages, rest)
		case "watch":
			a.Watch = rest == "yes"
		case "action":
			a.Action = policy.Action(rest)
		case "end":
			if a.Action == "" {
				return Answer{}, errors.New("reading answer: no action")
			}
			return a, nil
		}
	}
	return Answer{}, errors.New("reading answer: it ends without \"end\"")
}

// parseImage reads the rest of an image line: DEV INO SIZE MTIME_NS CTIME_NS PATH.
func parseImage(rest string) (Checked, error) {
	fields := strings.SplitN(rest, " ", 6)
	if len(fields) != 6 || fields[5] == "" {
		return Checked{}, errors.New("want six fields")
	}
	var nums [5]int64
	for i := range nums {
		n, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil && i < 2 {
			// Device and inode numbers are unsigned, and may use all 64 bits.
			var u uint64
			u, err = strconv.ParseUint(fields[i], 10, 64)
			n = int64(u)
		}
		if err != nil {
			return Checked{}, err
		}
		nums[i] = n
	}
	return Checked{Path: fields[5], ID: image.FileID{Dev: uint64(nums[0]),
		Ino: uint64(nums[1]), Size: nums[2], MtimeNs: nums[3], CtimeNs: nums[4]}}, nil
}
