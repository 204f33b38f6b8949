package nodesetup

import (
	"errors"
	"io/fs"
	"os"
)

// errWindows is why install and uninstall refuse to run on Windows: they
// edit a Linux node's systemd units, kubelet flags and files.
var errWindows = errors.New("install and uninstall are for Linux nodes; on Windows copy the binary and write the config by hand: " +
	"put this .exe in the directory the kubelet's --image-credential-provider-bin-dir names, as ecr-credential-provider.exe, " +
	"and write what 'ecr-credential-provider config print' prints to the file its --image-credential-provider-config names " +
	"(see the README's Windows section)")

// Nothing below runs on Windows: unsupportedOS stops Install and Uninstall.
const oNoFollow = 0

func unsupportedOS() error             { return errWindows }
func lockExclusive(*os.File) error     { return errWindows }
func owner(fs.FileInfo) (uid, gid int) { return -1, -1 }
func writable(string) bool             { return false }

func openNoFollow(*nodeFS, string, int) (*os.File, error) { return nil, errWindows }
