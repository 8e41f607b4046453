package launch

// optionKind says whether an option takes a value.
type optionKind int

const (
	boolean    optionKind = iota // "--nv", or "--nv=false" with the value attached
	takesValue                   // "--bind a:b" or "--bind=a:b"
)

// optionSet is the options accepted at one point of the command line.
type optionSet struct {
	long  map[string]optionKind
	short map[byte]optionKind
}

// The option tables: the union of Apptainer 1.x and SingularityCE 3.x/4.x options of the
// action commands (exec, run, shell, test, instance start, instance run), read from their
// flag definitions (cmd/internal/cli/action_flags.go and apptainer.go in each project).
// An option both know is a boolean in both or takes a value in both.
var (
	// Root options, before the command.
	globalLong = map[string]optionKind{
		"config": takesValue, "debug": boolean, "nocolor": boolean, "quiet": boolean,
		"silent": boolean, "verbose": boolean, "build-config": boolean, "help": boolean,
		"version": boolean,
	}
	globalShort = map[byte]optionKind{
		'c': takesValue, 'd': boolean, 'q': boolean, 's': boolean, 'v': boolean, 'h': boolean,
	}

	// Root options a command inherits. After the command, -c is --contain (a local
	// option shadows an inherited shorthand), but --config keeps its value.
	inheritedLong  = globalLong
	inheritedShort = map[byte]optionKind{
		'd': boolean, 'q': boolean, 's': boolean, 'v': boolean, 'h': boolean,
	}

	// Options of the action commands.
	actionValueOptions = []string{
		"add-caps", "app", "apply-cgroups", "authfile", "bind", "blkio-weight",
		"blkio-weight-device", "cdi-dirs", "containlibs", "cpu-shares", "cpus",
		"cpuset-cpus", "cpuset-mems", "cwd", "data", "device", "dmtcp-launch",
		"dmtcp-restart", "dns", "docker-host", "docker-password", "docker-username",
		"drop-caps", "env", "env-file", "fusemount", "home", "hostname", "memory",
		"memory-reservation", "memory-swap", "mount", "netns-path", "network",
		"network-args", "no-mount", "overlay", "pem-path", "pids-limit", "proot", "pwd",
		"scratch", "security", "tmpdir", "vm-cpu", "vm-ip", "vm-ram", "workdir",
	}
	actionBoolOptions = []string{
		"allow-setuid", "boot", "cleanenv", "compat", "contain", "containall",
		"disable-cache", "docker-login", "fakeroot", "ignore-fakeroot-command",
		"ignore-subuid", "ignore-userns", "ipc", "keep-layers", "keep-privs", "net",
		"no-compat", "no-eval", "no-home", "no-https", "no-init", "no-nv", "no-oci",
		"no-pid", "no-privs", "no-rocm", "no-setgroups", "no-tmp-sandbox", "no-umask",
		"nohttps", "nv", "nvccli", "oci", "oom-kill-disable", "passphrase", "pid", "rocm",
		"sharens", "sif-fuse", "tmp-sandbox", "underlay", "unsquash", "userns", "uts", "vm",
		"vm-err", "writable", "writable-tmpfs",
	}
	actionShort = map[byte]optionKind{
		'B': takesValue, 'H': takesValue, 'o': takesValue, 'S': takesValue, 'W': takesValue,
		'c': boolean, 'C': boolean, 'e': boolean, 'f': boolean, 'i': boolean, 'n': boolean,
		'p': boolean, 'u': boolean, 'w': boolean,
	}

	globalOptions    = optionSet{long: globalLong, short: globalShort}
	inheritedOptions = optionSet{long: inheritedLong, short: inheritedShort}
	actionOptions    = commandOptions(nil, nil)
	// shell adds --shell/-s (the program to run), which shadows the inherited -s (--silent).
	shellOptions = commandOptions(map[string]optionKind{"shell": takesValue, "syos": boolean},
		map[byte]optionKind{'s': takesValue})
	// instance start and instance run add --pid-file.
	instanceOptions = commandOptions(map[string]optionKind{"pid-file": takesValue}, nil)
)

// commandOptions builds the options of one action command: the inherited root options, the
// action options, and extra ones that take precedence.
func commandOptions(extraLong map[string]optionKind, extraShort map[byte]optionKind) optionSet {
	set := optionSet{long: map[string]optionKind{}, short: map[byte]optionKind{}}
	for name, kind := range inheritedLong {
		set.long[name] = kind
	}
	for letter, kind := range inheritedShort {
		set.short[letter] = kind
	}
	for _, name := range actionValueOptions {
		set.long[name] = takesValue
	}
	for _, name := range actionBoolOptions {
		set.long[name] = boolean
	}
	for letter, kind := range actionShort {
		set.short[letter] = kind
	}
	for name, kind := range extraLong {
		set.long[name] = kind
	}
	for letter, kind := range extraShort {
		set.short[letter] = kind
	}
	return set
}
