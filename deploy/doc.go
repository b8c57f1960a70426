// Package deploy holds no Go code: its directory is the kustomize base that runs coalmine's
// in-cluster daemon (`kubectl apply -k deploy/`). Its tests check the manifests: statically
// (least-privilege RBAC without wildcards, a hardened Deployment, the CanaryPolicy
// CustomResourceDefinition in the base, every image pinned: coalmine's to the release in
// ../VERSION, none latest) and against a real API server (server-side dry run, apply, the
// example policies accepted as CanaryPolicy objects, and what the ServiceAccount may and may
// not do).
package deploy
