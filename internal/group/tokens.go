package group

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
)

// ParseClientTokens reads the client API tokens of a group's token Secret
// key (spec.clientAccess.tokenSecretRef), one per line. Surrounding white
// space is trimmed; empty lines and lines starting with # are skipped; a
// token may not contain white space. At least one token is required. The
// license server loads the file with it and the operator checks the Secret
// with it, so both agree on what a valid file is.
func ParseClientTokens(data []byte) ([]string, error) {
	var tokens []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, errors.New("a client token may not contain white space")
		}
		tokens = append(tokens, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(tokens) == 0 {
		return nil, errors.New("no client token (one per line; empty lines and # comments are skipped)")
	}
	return tokens, nil
}
