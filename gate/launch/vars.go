package launch

// Variables: a batch script often names its image once (IMG=/shared/app.sif) and launches
// "$IMG". Such a variable is resolved when it cannot hold anything else at the launch: every
// assignment to it in the script is a literal value (all of them are candidates), one of
// them runs unconditionally at the top level before the launch, and nothing else sets it
// (for, read, unset, declare, +=) or may have (eval, source). Anything else is unresolved.

// maxValues bounds the values a word may take before it is given up as unresolved, and
// maxLookups the variable lookups spent on one word.
const (
	maxValues  = 16
	maxLookups = 256
)

// variable is what a script does with one name.
type variable struct {
	values  []word // the literal assignments, in order
	dynamic bool   // set in some way that is known only at run time
}

// variables are the assignments of one script.
type variables struct {
	byName map[string]*variable
	// off is set when the script may set variables where they cannot be seen.
	off bool
	// lookups counts the lookups made for the word being resolved.
	lookups int
}

// declarers persist the NAME=value words that follow them.
var declarers = map[string]bool{"export": true, "readonly": true, "declare": true,
	"typeset": true, "local": true}

// setters set the names that follow them in ways known only at run time.
var setters = map[string]bool{"for": true, "select": true, "read": true, "mapfile": true,
	"readarray": true, "getopts": true, "unset": true, "printf": true, "let": true,
	"wait": true}

func collectVariables(commands []command) *variables {
	v := &variables{byName: map[string]*variable{}}
	for _, cmd := range commands {
		i := 0
		for i < len(cmd.words) {
			if _, _, _, ok := cmd.words[i].assignment(); !ok {
				break
			}
			i++
		}
		if i == len(cmd.words) { // only assignments: they persist
			for _, w := range cmd.words {
				v.assign(w.assignment())
			}
			continue
		}
		first := cmd.words[i].literalText()
		rest := cmd.words[i+1:]
		switch {
		case first == "eval" || first == "source" || first == ".":
			v.off = true
		case declarers[first]:
			for _, w := range rest {
				if _, _, _, ok := w.assignment(); ok {
					v.assign(w.assignment())
				} else if first != "export" && first != "readonly" && isName(w.literalText()) {
					v.get(w.literalText()).dynamic = true
				}
			}
		case setters[first]:
			for _, w := range rest {
				if name, _, _, ok := w.assignment(); ok {
					v.get(name).dynamic = true
				} else if isName(w.literalText()) {
					v.get(w.literalText()).dynamic = true
				}
			}
		}
	}
	return v
}

func (v *variables) get(name string) *variable {
	if v.byName[name] == nil {
		v.byName[name] = &variable{}
	}
	return v.byName[name]
}

func (v *variables) assign(name string, value word, appends bool, ok bool) {
	if !ok {
		return
	}
	info := v.get(name)
	if appends {
		info.dynamic = true
		return
	}
	info.values = append(info.values, value)
}

// resolve turns a word into an arg: its possible values, given the names set at the top
// level so far.
func (v *variables) resolve(w word, set map[string]bool) arg {
	v.lookups = 0
	values, ok := v.expand(w, set, map[string]bool{})
	if !ok {
		return arg{raw: w.raw}
	}
	return arg{values: values, raw: w.raw}
}

func (v *variables) expand(w word, set, seen map[string]bool) ([]string, bool) {
	if w.glob {
		return nil, false
	}
	results := []string{""}
	for _, p := range w.parts {
		options := []string{p.text}
		switch {
		case p.dynamic:
			return nil, false
		case p.name != "":
			values, ok := v.lookup(p.name, set, seen)
			if !ok {
				return nil, false
			}
			for _, value := range values {
				if !p.quoted && splits(value) {
					return nil, false // word splitting or globbing would apply
				}
			}
			options = values
		}
		var next []string
		for _, r := range results {
			for _, o := range options {
				next = append(next, r+o)
			}
		}
		if len(next) > maxValues {
			return nil, false
		}
		results = next
	}
	return dedup(results), true
}

func (v *variables) lookup(name string, set, seen map[string]bool) ([]string, bool) {
	info := v.byName[name]
	v.lookups++
	if v.off || info == nil || v.lookups > maxLookups || info.dynamic || !set[name] || seen[name] {
		return nil, false
	}
	seen[name] = true
	defer delete(seen, name)
	var all []string
	for _, value := range info.values {
		values, ok := v.expand(value, set, seen)
		if !ok {
			return nil, false
		}
		all = append(all, values...)
	}
	return dedup(all), len(all) > 0
}

func splits(value string) bool {
	for i := 0; i < len(value); i++ {
		switch value[i] {
		case ' ', '\t', '\n', '*', '?', '[':
			return true
		}
	}
	return value == ""
}

func dedup(values []string) []string {
	var out []string
	for _, value := range values {
		if !contains(out, value) {
			out = append(out, value)
		}
	}
	return out
}

// scanScript finds the launches of a script. afterCd says that a cd may already have run.
func scanScript(text string, afterCd bool) Found {
	l := lex(text)
	vars := collectVariables(l.commands)
	set := map[string]bool{}
	var found Found
	for _, cmd := range l.commands {
		i := 0
		for i < len(cmd.words) {
			if _, _, _, ok := cmd.words[i].assignment(); !ok {
				break
			}
			i++
		}
		if i == len(cmd.words) {
			if cmd.depth == 0 {
				for _, w := range cmd.words {
					name, _, _, _ := w.assignment()
					set[name] = true
				}
			}
			continue
		}

		// NAME=value before a command is only that command's environment: the command's
		// own words were expanded before it applies.
		words := cmd.words[i:]
		first := words[0].literalText()
		if first == "cd" || first == "pushd" || first == "popd" {
			afterCd = true
		}
		args := make([]arg, len(words))
		for j, w := range words {
			args[j] = vars.resolve(w, set)
		}
		scanCommand(args, afterCd, &found)

		if cmd.depth == 0 && declarers[first] {
			for _, w := range words[1:] {
				if name, _, _, ok := w.assignment(); ok {
					set[name] = true
				}
			}
		}
	}
	for _, sub := range l.subs {
		found.merge(scanScript(sub, afterCd))
	}
	return found
}
