package policy

// WatchAction says what `scan-gate watch` does about a running container whose image the
// policy blocks (or cannot decide on and blocks).
type WatchAction string

// Watch actions. Every decision is written to the audit log whatever the action.
const (
	// WatchLog only records the decision.
	WatchLog WatchAction = "log"
	// WatchNotify also writes the message to the task's standard error.
	WatchNotify WatchAction = "notify"
	// WatchCancel also writes the message and cancels the job with scancel.
	WatchCancel WatchAction = "cancel"
)

// Watch configures `scan-gate watch`, which checks containers that are already running.
type Watch struct {
	// Action is what a blocking verdict on a running container does.
	Action WatchAction
	// Scancel is the scancel binary, absolute or looked up in PATH.
	Scancel string
}

// defaultWatch is the [watch] table an empty policy means.
func defaultWatch() Watch {
	return Watch{Action: WatchLog, Scancel: "scancel"}
}

type rawWatch struct {
	Action  rawValue `toml:"action"`
	Scancel rawValue `toml:"scancel"`
}

// watchKeys decodes [watch].
func (d *decoder) watchKeys(raw *rawPolicy, p *Policy) {
	oneOf(d, "watch.action", raw.Watch.Action, "watch action", &p.Watch.Action,
		WatchLog, WatchNotify, WatchCancel)
	d.name("watch.scancel", raw.Watch.Scancel, &p.Watch.Scancel)
}

// writeWatch writes [watch] into the canonical policy.
func (w *tomlWriter) writeWatch(p *Policy) {
	w.table("watch")
	w.str("action", string(p.Watch.Action))
	w.str("scancel", p.Watch.Scancel)
}
