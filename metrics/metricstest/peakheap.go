package metricstest

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// PeakHeap runs f for each of b's iterations, with a collection after each, and returns the
// most heap in use above where it began, in MiB: what reading one hostile input costs at the
// peak, not the garbage of the ones before.
func PeakHeap(b *testing.B, f func()) float64 {
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	for b.Loop() {
		f()
		runtime.GC()
	}
	close(done)
	return float64(peak.Load()-min(peak.Load(), base.HeapInuse)) / (1 << 20)
}
