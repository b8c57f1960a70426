package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coalmine/coalmine/sandbox"
	"github.com/coalmine/coalmine/simulator"
)

// upCluster runs a real control plane, Prometheus 3 with Kubernetes discovery (unless
// withPrometheus is false), and the simulator in cluster mode, until ctx is done.
func upCluster(ctx context.Context, logger zerolog.Logger, stdout io.Writer, scenarioFile, dir, readyFile, adminAddr string, scrape time.Duration, withPrometheus bool) error {
	sc, dir, cleanup, err := prepare(scenarioFile, dir)
	if err != nil {
		return err
	}
	defer cleanup()
	logger.Info().Msg("starting the control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, prometheus")
	cluster, err := sandbox.StartCluster(ctx, sandbox.ClusterOptions{
		Dir: filepath.Join(dir, "cluster"), WithPrometheus: withPrometheus,
		Prometheus: sandbox.PrometheusOptions{ScrapeInterval: scrape},
	})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	logger.Info().Dur("took", cluster.StartupTime()).Str("kubeconfig", cluster.Kubeconfig()).Msg("control plane ready")
	for _, app := range sc.Apps {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: app.Namespace}}
		if _, err := cluster.Client().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", app.Namespace, err)
		}
	}
	sim, err := simulator.Start(ctx, sc, simulator.Options{Kube: cluster.Client(), Logger: logger.With().Str("component", "simulator").Logger()})
	if err != nil {
		return err
	}
	defer sim.Stop()
	if adminAddr != "" {
		stopAdmin, err := serveAdmin(adminAddr, sim, logger)
		if err != nil {
			return err
		}
		defer stopAdmin()
	}
	promURL := ""
	if withPrometheus {
		promURL = cluster.Prometheus().URL()
	}
	vars := fmt.Sprintf("KUBECONFIG=%s\nPROMETHEUS_URL=%s\nKUBECTL=%s\n", cluster.Kubeconfig(), promURL, cluster.Kubectl())
	fmt.Fprint(stdout, vars)
	if readyFile != "" {
		if err := os.WriteFile(readyFile, []byte(vars), 0o644); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	logger.Info().Str("prometheus", promURL).Msg("sandbox ready")
	<-ctx.Done()
	logger.Info().Msg("tearing down")
	return nil
}
