package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/marin-go/marin/host/runner"
	"github.com/marin-go/marin/host/runner/kubernetes"
)

// k8sOptions are the flags of the kubernetes runner.
type k8sOptions struct {
	kubeconfig, context, namespace string
	image, secret, serviceAccount  string
	sharedClaim                    string
	keepJobs                       bool
}

func (o *k8sOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubernetes: kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&o.context, "k8s-context", "", "kubernetes: kubeconfig context (default the current one)")
	f.StringVar(&o.namespace, "k8s-namespace", "", "kubernetes: namespace of the Jobs (default the context's)")
	f.StringVar(&o.image, "k8s-image", "", "kubernetes: the marin image the Jobs run (built from the repository's Dockerfile); resources.image overrides it per step")
	f.StringVar(&o.secret, "k8s-secret", "", "kubernetes: Secret whose keys become the pods' environment (object-store credentials, HF_TOKEN)")
	f.StringVar(&o.serviceAccount, "k8s-service-account", "", "kubernetes: service account the pods run as")
	f.StringVar(&o.sharedClaim, "k8s-shared-claim", "", "kubernetes: PersistentVolumeClaim holding a shared file:// prefix, mounted at the prefix's path")
	f.BoolVar(&o.keepJobs, "k8s-keep-jobs", false, "kubernetes: keep succeeded Jobs (failed ones are always kept)")
}

// runner connects to the cluster of the kubeconfig. prefix is the run's
// prefix URL, whose path a shared claim is mounted at.
func (o *k8sOptions) runner(prefix string) (runner.Runner, error) {
	client, ns, err := kubernetes.LoadClient(o.kubeconfig, o.context)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	if o.namespace != "" {
		ns = o.namespace
	}
	cfg := kubernetes.Config{
		Client: client, Namespace: ns, Image: o.image, CredentialsSecret: o.secret,
		ServiceAccount: o.serviceAccount, KeepJobs: o.keepJobs, SharedClaim: o.sharedClaim,
	}
	if o.sharedClaim != "" {
		p, ok := strings.CutPrefix(prefix, "file://")
		if !ok {
			return nil, withCode(exitUsage, fmt.Errorf("--k8s-shared-claim goes with a file:// prefix, not %s", prefix))
		}
		cfg.SharedPath = p
	}
	r, err := kubernetes.New(cfg)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return r, nil
}
