package providerconfig

import "github.com/kubecred/ecr-credential-provider/internal/ecrhost"

func ecrhostMatchImages(public bool) []string { return ecrhost.MatchImages(public) }
