package nodesetup

import (
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
)

// quoteEnvValue writes v as a double-quoted EnvironmentFile value that
// ParseEnvFile (and systemd) read back as v.
func quoteEnvValue(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if strings.IndexByte("\"\\`$", v[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

// setEnvVar returns data with key's effective (last) assignment replaced by
// key="value", or with the assignment appended when the file has none. Every
// other byte of the file stays as it was.
func setEnvVar(data []byte, as []kubeletwiring.EnvAssign, key, value string) []byte {
	// A file written with CRLF line ends keeps them.
	eol := "\n"
	if strings.Contains(string(data), "\r\n") {
		eol = "\r\n"
	}
	line := key + "=" + quoteEnvValue(value) + eol
	if a, ok := kubeletwiring.LookupEnv(as, key); ok {
		out := append([]byte{}, data[:a.Start]...)
		out = append(out, line...)
		return append(out, data[a.End:]...)
	}
	out := append([]byte{}, data...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, eol...)
	}
	return append(out, line...)
}
