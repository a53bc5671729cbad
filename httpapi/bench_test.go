package httpapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// reportCPU reports the process's CPU time (user and system) per
// iteration as cpu-µs/op, from the call to the benchmark's end: on a
// shared machine it varies less than ns/op, which counts waiting too.
func reportCPU(b *testing.B) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	b.Cleanup(func() {
		b.ReportMetric(float64((cpu()-start).Microseconds())/float64(b.N), "cpu-µs/op")
	})
}

// BenchmarkChargeCycle runs charge cycles through the real handler, one
// request per operation: POST /v1/holds (reserve 1 × generate), then POST
// /v1/holds/{id}/capture. It calls ServeHTTP directly (no sockets), from
// many goroutines so that operations share group commits as in `creditd
// serve`; one iteration is one cycle. Engine and SQLite work are included,
// so compare allocs/op and ns/op between runs of this benchmark, not with
// the HTTP-free engine benchmarks.
func BenchmarkChargeCycle(b *testing.B) {
	h, _, _ := servedHandler(b)
	do := func(tb testing.TB, method, path, body string, want int) []byte {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			tb.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		return rec.Body.Bytes()
	}
	const accounts = 100
	for i := range accounts {
		id := "a" + strconv.Itoa(i)
		do(b, "PUT", "/v1/accounts/"+id, `{"plan":"paid"}`, http.StatusCreated)
		do(b, "POST", "/v1/accounts/"+id+"/grants", `{"amount":1000000000,"source":"admin"}`, http.StatusCreated)
	}
	var next atomic.Int64
	b.SetParallelism(32) // 32 × GOMAXPROCS requests in flight
	b.ReportAllocs()
	reportCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		acct := "a" + strconv.Itoa(int(next.Add(1)%accounts))
		reserve := `{"account_id":"` + acct + `","action":"generate","quantity":1}`
		for pb.Next() {
			out := do(b, "POST", "/v1/holds", reserve, http.StatusCreated)
			// The id is the first member: {"id":"…",
			id, _, _ := bytes.Cut(bytes.TrimPrefix(out, []byte(`{"id":"`)), []byte(`"`))
			do(b, "POST", "/v1/holds/"+string(id)+"/capture", `{"quantity":1}`, http.StatusOK)
		}
	})
}
