package providerconfig

import "github.com/kubecred/ecr-credential-provider/internal/imageref"

// ImageName returns the name the kubelet matches matchImages against for an
// image reference as written in a pod spec ("nginx:1" is
// "docker.io/library/nginx"), or the kubelet's reason for refusing the
// reference (an *imageref.Error).
func ImageName(image string) (string, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return "", err
	}
	return ref.Name(), nil
}
