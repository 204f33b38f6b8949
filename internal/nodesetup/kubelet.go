package nodesetup

import (
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"

	"fmt"
	"io/fs"
	"path"
	"strings"
)

const (
	extraArgsVar   = "KUBELET_EXTRA_ARGS"
	kubeletService = "kubelet.service"
	// ourDropIn sorts after kubeadm's 10-kubeadm.conf, so its Environment=
	// is applied last.
	ourDropIn       = "/etc/systemd/system/kubelet.service.d/90-ecr-credential-provider.conf"
	kubeadmFlagsEnv = "/var/lib/kubelet/kubeadm-flags.env"
)

// change is one file install wants to hold given content.
type change struct {
	Path string
	Data []byte
	// Mode is the mode of a file install owns; 0 keeps the mode of a file
	// it edits (0644 when it has to create it).
	Mode   fs.FileMode
	Binary bool
	// Unit marks systemd unit files: systemd reads them only on daemon-reload.
	Unit bool
	// Role is what the file is to the kubelet: roleBinary, roleConfig or
	// roleWiring; uninstall takes out of it only what the role puts in.
	Role string
	// Var is the variable a wiring file sets our flags in; AddedVar says
	// the file had no assignment of it, so uninstall may drop the line.
	Var      string
	AddedVar bool
	// Keys are the k3s/rke2 config keys a wiring file sets.
	Keys []string
	// Set are our flags (or keys) and their values; Replaced what they
	// were before, for uninstall to put back.
	Set, Replaced map[string]string
}

// The roles of the files install writes.
const (
	roleBinary = "binary"
	roleConfig = "config"
	roleWiring = "wiring"
)

// envFileHeader starts an env file install creates.
const envFileHeader = "# Extra kubelet flags, read by kubelet.service"

// flagMap is flags as a manifest records them.
func flagMap(flags []kubeletFlag) map[string]string {
	m := map[string]string{}
	for _, f := range flags {
		m[f.Name] = f.Value
	}
	return m
}

// replacedFlags are the settings withFlags dropped, by flag name (the last
// one counts, as for the kubelet).
func replacedFlags(dropped []flagOccurrence) map[string]string {
	if len(dropped) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, o := range dropped {
		m[o.Name] = o.Value
	}
	return m
}

// wiring is how a distribution's kubelet is told about the provider.
type wiring struct {
	Changes []change
	Notes   []string
	// Service is the systemd unit to restart for the kubelet to pick it up.
	Service string
}

// planKubeletUnit wires a kubelet run by kubelet.service (kubeadm's
// packages, or a unit of one's own) through KUBELET_EXTRA_ARGS, the
// variable kubeadm reserves for the user and both kinds of unit expand last.
// It edits the EnvironmentFile that sets the variable; for kubeadm, the one
// its drop-in names for it (/etc/default/kubelet on Debian, /etc/sysconfig/
// kubelet on RHEL); otherwise it sets the variable in a drop-in of its own.
func planKubeletUnit(n *nodeFS, d Distro, flags []kubeletFlag) (wiring, error) {
	w := wiring{Service: "kubelet"}
	u, err := kubeletwiring.LoadUnit(n, kubeletService, ourDropIn)
	if err != nil {
		return w, err
	}
	if len(u.Files) == 0 {
		return w, fmt.Errorf("found no %s below %s (looked in %s); install wires the kubelet through its systemd unit, so for a kubelet started some other way add these flags to its command line yourself: %s",
			kubeletService, n.dir, strings.Join(kubeletwiring.UnitDirs, ", "), flagString(flags))
	}
	exec, words, err := u.ExecStart()
	if err != nil {
		return w, err
	}
	split, whole := kubeletwiring.References(words, extraArgsVar)
	switch {
	case whole && !split:
		return w, fmt.Errorf("%s: ExecStart passes ${%s} as one single argument, so the two flags cannot go through it; change it to $%s (no braces) with 'systemctl edit kubelet', or add these flags to ExecStart yourself: %s",
			exec.Where(), extraArgsVar, extraArgsVar, flagString(flags))
	case !split:
		return w, fmt.Errorf("%s: ExecStart does not expand $%s, so there is no variable install can set to add flags; add $%s to the end of ExecStart with 'systemctl edit kubelet' and run install again, or add these flags to ExecStart yourself: %s",
			exec.Where(), extraArgsVar, extraArgsVar, flagString(flags))
	}
	env, envFiles, err := u.Environment(n)
	if err != nil {
		return w, err
	}

	// Where the variable's effective value comes from decides where ours goes.
	target := ""
	if v, ok := env[extraArgsVar]; ok && v.File != "" {
		target = v.File
	} else if d == Kubeadm {
		for _, f := range envFiles {
			if f.Path != kubeadmFlagsEnv && path.IsAbs(f.Path) && !strings.ContainsAny(f.Path, "*?[%") {
				target = f.Path
			}
		}
	}

	var newValue string
	var dropped []flagOccurrence
	if target != "" {
		st, err := n.read(target)
		if err != nil {
			return w, err
		}
		as, err := kubeletwiring.ParseEnvFile(target, st.Data)
		if err != nil {
			return w, fmt.Errorf("refusing to edit %w", err)
		}
		base := env[extraArgsVar].Value // from Environment=, which the file will override
		if old, ok := kubeletwiring.LookupEnv(as, extraArgsVar); ok {
			base = old.Value
		}
		newValue, dropped = withFlags(base, flags)
		data := st.Data
		if !st.Exists {
			data = []byte(envFileHeader + " (" + strings.Join(u.Files, ", ") + ").\n")
		}
		_, had := kubeletwiring.LookupEnv(as, extraArgsVar)
		w.Changes = append(w.Changes, change{Path: target, Data: setEnvVar(data, as, extraArgsVar, newValue), Role: roleWiring, Var: extraArgsVar, AddedVar: !had, Set: flagMap(flags), Replaced: replacedFlags(dropped)})
	} else {
		base := env[extraArgsVar].Value
		st, err := n.read(ourDropIn)
		if err != nil {
			return w, err
		}
		if st.Exists {
			// What the operator added to our line since stays in it.
			if _, _, v, ok, err := dropInValue(st.Data); err != nil {
				return w, err
			} else if ok {
				base = v
			}
		}
		newValue, dropped = withFlags(base, flags)
		data := dropInFor(newValue)
		if st.Exists {
			// Someone added to our drop-in: change only our line.
			if data, err = setDropInValue(st.Data, newValue); err != nil {
				return w, err
			}
		}
		w.Changes = append(w.Changes, change{Path: ourDropIn, Data: data, Mode: 0o644, Unit: true, Role: roleWiring, Var: extraArgsVar, AddedVar: true, Set: flagMap(flags)})
	}
	for _, o := range dropped {
		w.Notes = append(w.Notes, fmt.Sprintf("replaced --%s=%s in %s (uninstall puts it back)", o.Name, o.Value, extraArgsVar))
	}

	// The kubelet takes the last value of a repeated flag; make sure
	// nothing after $KUBELET_EXTRA_ARGS overrides ours.
	env[extraArgsVar] = kubeletwiring.EnvValue{Value: newValue, From: "install"}
	args := kubeletwiring.Expand(words, env, exec.Where())
	notes, err := checkFlagOrder(args, flags, extraArgsVar)
	if err != nil {
		return w, err
	}
	w.Notes = append(w.Notes, notes...)
	return w, nil
}

// checkFlagOrder checks that, on the expanded command line, the last
// setting of each of our flags is the one from ourVar. Earlier settings
// elsewhere are reported, since the operator may think they still count.
func checkFlagOrder(args []kubeletwiring.ExpandedWord, flags []kubeletFlag, ourVar string) ([]string, error) {
	words := make([]string, len(args))
	for i, a := range args {
		words[i] = a.Word
	}
	var notes []string
	for _, f := range flags {
		occ := findFlags(words, f.Name)
		if len(occ) == 0 {
			continue
		}
		last := occ[len(occ)-1]
		if a := args[last.Index]; a.Var != ourVar {
			return nil, fmt.Errorf("%s sets --%s=%s after $%s on the kubelet's command line, so it would override ours (%s); remove it there, or run install with --config/--bin-dir naming the paths it uses",
				a.From, f.Name, last.Value, ourVar, f.Value)
		}
		for _, o := range occ[:len(occ)-1] {
			if a := args[o.Index]; a.Var != ourVar {
				notes = append(notes, fmt.Sprintf("%s also sets --%s=%s; the kubelet ignores it because $%s comes later on its command line", a.From, f.Name, o.Value, ourVar))
			}
		}
	}
	return notes, nil
}

func dropInFor(value string) []byte {
	var b strings.Builder
	b.WriteString("# Written by 'ecr-credential-provider install'; 'ecr-credential-provider uninstall' removes it.\n")
	b.WriteString("# kubelet.service's ExecStart expands $" + extraArgsVar + "; this adds the image\n")
	b.WriteString("# credential provider flags to it.\n")
	b.WriteString("[Service]\n")
	b.WriteString(dropInLine(value))
	return []byte(b.String())
}

func dropInLine(value string) string {
	return "Environment=" + quoteUnitWord(extraArgsVar+"="+value) + "\n"
}

// dropInValue finds the one line of a drop-in that sets extraArgsVar:
// its byte span and value. ok is false when there is none; more than one,
// or one continued over several lines, is an error: install would have
// to guess which to edit.
func dropInValue(data []byte) (start, end int, value string, ok bool, err error) {
	ss, err := kubeletwiring.ParseUnit(ourDropIn, data)
	if err != nil {
		return 0, 0, "", false, err
	}
	lines := strings.SplitAfter(string(data), "\n")
	for _, s := range ss {
		if s.Section != "Service" || s.Key != "Environment" {
			continue
		}
		words, err := kubeletwiring.SplitWords(s.Value)
		if err != nil {
			return 0, 0, "", false, fmt.Errorf("%s: %v", s.Where(), err)
		}
		for _, w := range words {
			v, isOurs := strings.CutPrefix(w, extraArgsVar+"=")
			if !isOurs {
				continue
			}
			if ok || len(words) > 1 || strings.HasSuffix(strings.TrimRight(lines[s.Line-1], "\r\n"), "\\") {
				return 0, 0, "", false, fmt.Errorf("%s: install edits only a drop-in whose one Environment= line sets %s alone; set it on one line of its own", s.Where(), extraArgsVar)
			}
			for _, l := range lines[:s.Line-1] {
				start += len(l)
			}
			end, value, ok = start+len(lines[s.Line-1]), v, true
		}
	}
	return start, end, value, ok, nil
}

// setDropInValue sets extraArgsVar in a drop-in, every other line kept.
func setDropInValue(data []byte, value string) ([]byte, error) {
	start, end, _, ok, err := dropInValue(data)
	if err != nil {
		return nil, err
	}
	if !ok {
		out := append([]byte{}, data...)
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		return append(out, "[Service]\n"+dropInLine(value)...), nil
	}
	return append(append(append([]byte{}, data[:start]...), dropInLine(value)...), data[end:]...), nil
}

// quoteUnitWord writes v as one double-quoted word of a unit file setting,
// which splitWords (and systemd) read back as v.
func quoteUnitWord(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%")
	return `"` + r.Replace(v) + `"`
}

func flagString(flags []kubeletFlag) string {
	s := make([]string, len(flags))
	for i, f := range flags {
		s[i] = f.String()
	}
	return strings.Join(s, " ")
}
