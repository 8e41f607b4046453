package qscanner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// maxTokenFile bounds what is read of a token file.
const maxTokenFile = 64 << 10

// LoadToken returns the Qualys access token: from file when one is named, else from the
// gate's own QUALYS_ACCESS_TOKEN. The file must be a regular file (not a symbolic link)
// owned by the user running the gate, readable by nobody else (mode 0600 or stricter); it
// holds the token alone, or a line QUALYS_ACCESS_TOKEN=<token>. Errors never contain the
// token.
func LoadToken(file string) (string, error) {
	if file == "" {
		token := strings.TrimSpace(os.Getenv(TokenEnv))
		if token == "" {
			return "", fmt.Errorf("no Qualys access token: set %s in the gate's "+
				"environment or name a token file in scanner.qscanner.token_file", TokenEnv)
		}
		return token, nil
	}

	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return "", fmt.Errorf("refusing Qualys token file %s: it is a symbolic link", file)
	}
	if err != nil {
		return "", fmt.Errorf("reading Qualys token file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading Qualys token file: %w", err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	switch {
	case !info.Mode().IsRegular():
		return "", fmt.Errorf("refusing Qualys token file %s: not a regular file", file)
	case !ok || int(st.Uid) != os.Geteuid():
		return "", fmt.Errorf("refusing Qualys token file %s: owned by uid %d, not by the "+
			"user running the gate (uid %d)", file, st.Uid, os.Geteuid())
	case info.Mode().Perm()&0o077 != 0:
		return "", fmt.Errorf("refusing Qualys token file %s: mode %04o lets others read "+
			"it; chmod 600 it", file, info.Mode().Perm())
	}

	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return "", fmt.Errorf("reading Qualys token file %s: %w", file, err)
	}
	token := strings.TrimSpace(string(data))
	if rest, ok := strings.CutPrefix(token, TokenEnv+"="); ok {
		token = strings.Trim(strings.TrimSpace(rest), `"'`)
	}
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("Qualys token file %s holds no token, or more than one line",
			file)
	}
	return token, nil
}
