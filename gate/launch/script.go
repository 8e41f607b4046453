package launch

import (
	"strings"
)

// The script reader is a lexer for the POSIX shell and bash syntax batch scripts use, not a
// shell: it splits the text into simple commands and their words, knows quoting, comments,
// line continuations, here-documents, redirections, command substitutions and compound
// commands, and leaves everything else alone. What it cannot be sure of, it reports as
// unresolved rather than guess.

// part is a piece of a word.
type part struct {
	text    string // literal text
	name    string // a variable, for $NAME and ${NAME}
	dynamic bool   // known only at run time: $(...), $1, ${X:-y}, ...
	quoted  bool   // inside quotes: no word splitting or globbing
}

// word is one shell word: its parts, and its text as written.
type word struct {
	parts []part
	raw   string
	// glob is set when the word has unquoted pattern characters or a leading tilde.
	glob bool
}

// command is one simple command, with the nesting depth of compound commands around it.
type command struct {
	words []word
	depth int
}

// lexer splits a script into simple commands.
type lexer struct {
	src      string
	pos      int
	commands []command
	current  []word
	// subs are the scripts of command substitutions, read on their own.
	subs []string
	// open are the compound commands open at pos: "if", "for", "case", "{", "(", ...
	open []string
	// heredocs wait for the end of the line to skip their bodies.
	heredocs []heredoc
	// lastWordEnd is where the last word ended, to tell "2>" from "2 >".
	lastWordEnd int
}

type heredoc struct {
	delimiter string
	stripTabs bool
}

// lex reads src into commands.
func lex(src string) *lexer {
	l := &lexer{src: src, lastWordEnd: -1}
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			l.pos++
		case c == '\n':
			l.endCommand()
			l.pos++
			l.skipHeredocBodies()
		case c == '#':
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		case c == '\\' && l.peek(1) == '\n':
			l.pos += 2
		case c == '&' && l.peek(1) == '>':
			l.pos++ // &> and &>>: a redirection of both outputs
			l.redirection()
		case c == ';' || c == '&' || c == '|':
			l.pos++
			for l.pos < len(l.src) && strings.IndexByte(";&|", l.src[l.pos]) >= 0 {
				l.pos++
			}
			l.endCommand()
		case c == '(' && l.arrayAssignment():
			// NAME=(a b c): an array, whose elements are not commands.
			n := len(l.current) - 1
			start := l.pos
			l.balanced('(', ')')
			l.current[n].raw += l.src[start:min(l.pos, len(l.src))]
			l.current[n].parts = append(l.current[n].parts, part{dynamic: true})
			l.lastWordEnd = l.pos
		case c == '(':
			l.endCommand()
			l.push("(")
			l.pos++
		case c == ')':
			l.endCommand()
			if l.top() == "(" {
				l.pop()
			}
			l.pos++
		case (c == '<' || c == '>') && l.peek(1) == '(':
			l.processSubstitution()
		case c == '<' || c == '>':
			l.redirection()
		default:
			l.current = append(l.current, l.word())
			l.lastWordEnd = l.pos
		}
		l.pos = min(l.pos, len(l.src)) // an unterminated quote ends the text
	}
	l.endCommand()
	return l
}

// arrayAssignment reports whether the "(" at pos opens the value of NAME=(...).
func (l *lexer) arrayAssignment() bool {
	n := len(l.current)
	if n == 0 || l.lastWordEnd != l.pos {
		return false
	}
	_, value, _, ok := l.current[n-1].assignment()
	return ok && len(value.parts) == 0
}

func (l *lexer) peek(n int) byte {
	if l.pos+n < len(l.src) {
		return l.src[l.pos+n]
	}
	return 0
}

func (l *lexer) push(what string) { l.open = append(l.open, what) }

func (l *lexer) pop() {
	if len(l.open) > 0 {
		l.open = l.open[:len(l.open)-1]
	}
}

func (l *lexer) top() string {
	if len(l.open) == 0 {
		return ""
	}
	return l.open[len(l.open)-1]
}

// reserved words that may start a command before the command proper.
var leaders = map[string]bool{"then": true, "do": true, "else": true, "elif": true,
	"!": true, "time": true, "if": true, "while": true, "until": true, "{": true}

// endCommand closes the current simple command, tracking compound commands by their
// reserved words.
func (l *lexer) endCommand() {
	words := l.current
	l.current = nil
	if len(words) == 0 {
		return
	}
	switch first := words[0].literalText(); first {
	case "fi", "done", "esac", "}":
		l.pop()
		return
	case "if", "while", "until", "for", "select", "case", "{":
		l.push(first)
	case "function":
		if words[len(words)-1].literalText() == "{" {
			l.push("{")
		}
		return
	}
	for len(words) > 0 && leaders[words[0].literalText()] {
		words = words[1:]
	}
	if len(words) > 0 {
		l.commands = append(l.commands, command{words: words, depth: len(l.open)})
	}
}

// redirection skips a redirection operator and its target word; a here-document's body is
// skipped at the end of the line.
func (l *lexer) redirection() {
	// "2>file": the 2 was read as a word; it is a descriptor, not an argument.
	if n := len(l.current); n > 0 && l.lastWordEnd == l.pos && isDigits(l.current[n-1].raw) {
		l.current = l.current[:n-1]
	}
	start := l.pos
	for l.pos < len(l.src) && strings.IndexByte("<>&|-", l.src[l.pos]) >= 0 {
		l.pos++
	}
	op := l.src[start:l.pos]
	for l.pos < len(l.src) && (l.src[l.pos] == ' ' || l.src[l.pos] == '\t') {
		l.pos++
	}
	if l.pos >= len(l.src) || l.src[l.pos] == '\n' {
		return
	}
	target := l.word()
	if strings.HasPrefix(op, "<<") && !strings.HasPrefix(op, "<<<") {
		l.heredocs = append(l.heredocs, heredoc{delimiter: target.unquotedText(),
			stripTabs: strings.HasPrefix(op, "<<-")})
	}
}

// skipHeredocBodies skips the bodies of the here-documents opened on the line just ended.
func (l *lexer) skipHeredocBodies() {
	for _, h := range l.heredocs {
		for l.pos < len(l.src) {
			end := strings.IndexByte(l.src[l.pos:], '\n')
			line := l.src[l.pos:]
			if end >= 0 {
				line = l.src[l.pos : l.pos+end]
				l.pos += end + 1
			} else {
				l.pos = len(l.src)
			}
			if h.stripTabs {
				line = strings.TrimLeft(line, "\t")
			}
			if line == h.delimiter {
				break
			}
		}
	}
	l.heredocs = nil
}

// processSubstitution reads <(...) or >(...) as a word known only at run time.
func (l *lexer) processSubstitution() {
	start := l.pos
	l.pos++ // < or >
	inner := l.balanced('(', ')')
	l.subs = append(l.subs, inner)
	l.current = append(l.current, word{raw: l.src[start:min(l.pos, len(l.src))],
		parts: []part{{dynamic: true}}})
	l.lastWordEnd = l.pos
}

// word reads one word at pos.
func (l *lexer) word() word {
	start := l.pos
	var w word
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case strings.IndexByte(" \t\r\n;&|()<>", c) >= 0:
			w.raw = l.src[start:l.pos]
			return w
		case c == '\\':
			if l.peek(1) == '\n' {
				l.pos += 2
				continue
			}
			if l.pos+1 < len(l.src) {
				w.literal(l.src[l.pos+1:l.pos+2], true)
			}
			l.pos += 2
		case c == '\'':
			end := strings.IndexByte(l.src[l.pos+1:], '\'')
			if end < 0 {
				end = len(l.src) - l.pos - 1
			}
			w.literal(l.src[l.pos+1:l.pos+1+end], true)
			l.pos += end + 2
		case c == '"':
			l.pos++
			l.doubleQuoted(&w)
		case c == '$':
			w.parts = append(w.parts, l.dollar(false))
		case c == '`':
			w.parts = append(w.parts, l.backquote())
		default:
			tilde := c == '~' && (l.pos == start || strings.IndexByte("=:", l.src[l.pos-1]) >= 0)
			if strings.IndexByte("*?[{", c) >= 0 || tilde {
				w.glob = true
			}
			w.literal(l.src[l.pos:l.pos+1], false)
			l.pos++
		}
	}
	w.raw = l.src[start:min(l.pos, len(l.src))]
	return w
}

// doubleQuoted reads the inside of "..." up to and past the closing quote.
func (l *lexer) doubleQuoted(w *word) {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '"':
			l.pos++
			return
		case c == '\\' && l.pos+1 < len(l.src) && strings.IndexByte("$`\"\\\n", l.peek(1)) >= 0:
			if l.peek(1) != '\n' {
				w.literal(l.src[l.pos+1:l.pos+2], true)
			}
			l.pos += 2
		case c == '$':
			w.parts = append(w.parts, l.dollar(true))
		case c == '`':
			w.parts = append(w.parts, l.backquote())
		default:
			w.literal(l.src[l.pos:l.pos+1], true)
			l.pos++
		}
	}
}

// literal appends literal text to the word, joining it to a literal part before it.
func (w *word) literal(text string, quoted bool) {
	if n := len(w.parts); n > 0 {
		last := &w.parts[n-1]
		if !last.dynamic && last.name == "" && last.quoted == quoted {
			last.text += text
			return
		}
	}
	w.parts = append(w.parts, part{text: text, quoted: quoted})
}

// dollar reads an expansion starting with $ at pos.
func (l *lexer) dollar(quoted bool) part {
	l.pos++ // $
	dynamic := part{dynamic: true, quoted: quoted}
	if l.pos >= len(l.src) {
		return part{text: "$", quoted: quoted}
	}
	c := l.src[l.pos]
	switch {
	case c == '(' && l.peek(1) == '(':
		l.balanced('(', ')') // arithmetic
		return dynamic
	case c == '(':
		l.subs = append(l.subs, l.balanced('(', ')'))
		return dynamic
	case c == '{':
		inner := l.balanced('{', '}')
		if isName(inner) {
			return part{name: inner, quoted: quoted}
		}
		return dynamic
	case isNameStart(c):
		start := l.pos
		for l.pos < len(l.src) && isNameChar(l.src[l.pos]) {
			l.pos++
		}
		return part{name: l.src[start:l.pos], quoted: quoted}
	case strings.IndexByte("0123456789@*#?-$!", c) >= 0:
		l.pos++
		return dynamic
	case c == '\'' && !quoted:
		// $'...': ANSI-C quoting; its escapes are not worth decoding here.
		for l.pos++; l.pos < len(l.src) && l.src[l.pos] != '\''; l.pos++ {
			if l.src[l.pos] == '\\' {
				l.pos++
			}
		}
		l.pos++
		return dynamic
	case c == '"' && !quoted:
		return part{quoted: true} // $"...": the quotes that follow are read as "..."
	}
	return part{text: "$", quoted: quoted}
}

// backquote reads `...` at pos as a command substitution.
func (l *lexer) backquote() part {
	l.pos++
	var inner strings.Builder
	for l.pos < len(l.src) && l.src[l.pos] != '`' {
		if l.src[l.pos] == '\\' && l.pos+1 < len(l.src) {
			l.pos++
		}
		inner.WriteByte(l.src[l.pos])
		l.pos++
	}
	l.pos++
	l.subs = append(l.subs, inner.String())
	return part{dynamic: true}
}

// balanced reads from the opening delimiter at pos to its match, minding quotes, and
// returns what is between them.
func (l *lexer) balanced(open, close byte) string {
	start := l.pos + 1
	depth := 0
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\\':
			l.pos++
		case c == '\'' && open == '(':
			if end := strings.IndexByte(l.src[l.pos+1:], '\''); end >= 0 {
				l.pos += end + 1
			}
		case c == '"':
			for l.pos++; l.pos < len(l.src) && l.src[l.pos] != '"'; l.pos++ {
				if l.src[l.pos] == '\\' {
					l.pos++
				}
			}
		case c == open:
			depth++
		case c == close:
			depth--
			if depth == 0 {
				l.pos++
				return l.src[start : l.pos-1]
			}
		}
		l.pos++
	}
	return l.src[min(start, len(l.src)):]
}

// literalText is the word's value when it is a plain literal, else "".
func (w word) literalText() string {
	var b strings.Builder
	for _, p := range w.parts {
		if p.dynamic || p.name != "" {
			return ""
		}
		b.WriteString(p.text)
	}
	return b.String()
}

// unquotedText is the word with its quotes removed and expansions kept as written.
func (w word) unquotedText() string {
	if text := w.literalText(); text != "" {
		return text
	}
	return w.raw
}

// assignment splits NAME=value and NAME+=value words. The value is the rest of the word.
func (w word) assignment() (name string, value word, appends bool, ok bool) {
	var prefix strings.Builder
	for i, p := range w.parts {
		if p.quoted || p.name != "" || p.dynamic {
			return "", word{}, false, false
		}
		eq := strings.IndexByte(p.text, '=')
		if eq < 0 {
			prefix.WriteString(p.text)
			continue
		}
		prefix.WriteString(p.text[:eq])
		name = prefix.String()
		appends = strings.HasSuffix(name, "+")
		name = strings.TrimSuffix(name, "+")
		if !isName(name) {
			return "", word{}, false, false
		}
		value.raw = w.raw[strings.IndexByte(w.raw, '=')+1:]
		if rest := p.text[eq+1:]; rest != "" {
			value.parts = append(value.parts, part{text: rest})
		}
		value.parts = append(value.parts, w.parts[i+1:]...)
		value.glob = w.glob
		return name, value, appends, true
	}
	return "", word{}, false, false
}

func isName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isNameChar(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
