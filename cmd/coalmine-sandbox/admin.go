package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/simulator"
)

// serveAdmin serves the simulator's admin API and returns a function that shuts it down.
func serveAdmin(addr string, sim *simulator.Simulator, logger zerolog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	srv := &http.Server{Handler: sim.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error().Err(err).Msg("admin server stopped")
		}
	}()
	logger.Info().Str("addr", ln.Addr().String()).Msg("simulator admin API serving")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx) // best effort at teardown
	}, nil
}
