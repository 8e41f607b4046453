package slurm

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/scan-gate/scan-gate/gate"
	gateimage "github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/gate/launch"
	"github.com/scan-gate/scan-gate/policy"
)

// Launch is one job step, or one batch script, to decide.
type Launch struct {
	// Found are the images the step's argv or the script names.
	Found launch.Found
	// Dir is the directory relative image paths are taken from: the step's or the job's
	// working directory.
	Dir string
	// Who is launching, from Slurm.
	Who policy.Subject
	// Option is the user's --scan-gate option.
	Option Option
	// Watching says the post-launch watch covers what cannot be named now.
	Watching bool
}

// Checker decides launches: a gate, and where decisions are recorded.
type Checker struct {
	Policy *policy.Policy
	// Gate checks images. When it is nil, or Unavailable is set, every image gets the
	// policy's no-decision verdict, with Unavailable as the reason.
	Gate        *gate.Gate
	Unavailable error
	// Record, when set, is called with every result, for the audit log.
	Record func(res gate.Result, who policy.Subject)
}

func (c *Checker) check(ctx context.Context, path string, who policy.Subject) gate.Result {
	if c.Gate != nil && c.Unavailable == nil {
		return c.Gate.Check(ctx, gate.Request{Image: path, Who: who})
	}
	cause := c.Unavailable
	if cause == nil {
		cause = errors.New("the gate could not be set up")
	}
	who.Image = path
	v := c.Policy.NoDecision(who, false, cause.Error())
	return gate.Result{Image: path, Action: v.Action, Verdict: v, Cache: gate.CacheNone,
		Message: v.Message(path), Error: cause.Error()}
}

// Decide checks every image the launch names and returns the answer for the plugin. An
// image that does not exist yet (made by the job itself, say) is not checked now: it joins
// the unresolved launches, which the post-launch watch covers.
func (c *Checker) Decide(ctx context.Context, l Launch) Answer {
	answer := Answer{Action: policy.Allow}
	unresolved := append([]string{}, l.Found.Unresolved...)
	var notes []string
	sandbox := false
	for _, image := range l.Found.Images {
		path := image
		if !filepath.IsAbs(path) {
			if l.Dir == "" {
				// No working directory known: the image cannot be found before it runs.
				unresolved = append(unresolved, image)
				continue
			}
			path = filepath.Join(l.Dir, path)
		}
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) || strings.ContainsAny(image, "\n\x00") ||
			err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
			unresolved = append(unresolved, image)
			continue
		}

		res := c.check(ctx, path, l.Who)
		if note := l.Option.apply(&res, c.Policy); note != "" && !contains(notes, note) {
			notes = append(notes, note)
		}
		if c.Record != nil {
			who := l.Who
			who.Image = res.Image
			c.Record(res, who)
		}
		answer.Action = policy.Stricter(answer.Action, res.Action)
		answer.Results = append(answer.Results, res)
		if res.Action == policy.Block || res.Action == policy.Warn || l.Option.Report {
			answer.Messages = append(answer.Messages, res.Message)
		}
		if err == nil {
			// The identity from before the check: a file changed during or after the
			// check differs at task start, in its change time at least.
			answer.Images = append(answer.Images, Checked{Path: image, ID: fileID(fi)})
			// A sandbox directory can be changed inside after the check without
			// changing the directory itself: only the watch sees what then runs.
			sandbox = sandbox || fi.IsDir()
		}
	}
	answer.Messages = append(answer.Messages, notes...)
	answer.Unresolved = unresolved
	answer.Watch = len(unresolved) > 0 || sandbox
	if l.Option.Report {
		later := "it is not checked"
		if l.Watching {
			later = "it is checked when its container starts"
		}
		for _, raw := range unresolved {
			answer.Messages = append(answer.Messages, "the image of "+raw+" cannot be "+
				"named before the job runs; "+later)
		}
	}
	return answer
}

// fileID is the identity of the file fi describes, as the plugin compares it.
func fileID(fi fs.FileInfo) gateimage.FileID {
	st := fi.Sys().(*syscall.Stat_t)
	return gateimage.FileID{Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size,
		MtimeNs: st.Mtim.Nano(), CtimeNs: st.Ctim.Nano()}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
