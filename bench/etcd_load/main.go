// Command etcd_load is bench/compare.py's put load against an etcd cluster: N concurrent
// clients, each with its own gRPC connection, put values of a fixed size under random
// keys, as redis-benchmark's SET does against Redis and Cairn (-c clients, -d size,
// -r keyspace). It prints one JSON object: operations, seconds, throughput and latency
// percentiles in milliseconds.
//
// Built in GOPATH mode against Debian's golang-etcd-server-dev sources:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o etcd_load ./bench/etcd_load
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type result struct {
	Ops      int     `json:"ops"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	Rps      float64 `json:"rps"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	Endpoint string  `json:"endpoint"`
}

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs of the cluster")
	clients := flag.Int("clients", 50, "concurrent clients, one connection each")
	total := flag.Int("n", 20000, "total number of puts")
	size := flag.Int("d", 100, "value size in bytes")
	keyspace := flag.Int("r", 100000, "keys are key:<random number below r>")
	target := flag.String("target", "leader", "send to the 'leader' only, or to 'all' endpoints")
	flag.Parse()

	eps := strings.Split(*endpoints, ",")
	if *target == "leader" {
		leader, err := findLeader(eps)
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd_load:", err)
			os.Exit(1)
		}
		eps = []string{leader}
	}
	value := strings.Repeat("v", *size)
	conns := make([]*clientv3.Client, *clients)
	for i := range conns {
		c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd_load: connect:", err)
			os.Exit(1)
		}
		defer c.Close()
		conns[i] = c
	}

	var next int64 = -1
	var errs int64
	latencies := make([]time.Duration, *total)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func(c *clientv3.Client, seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for {
				op := atomic.AddInt64(&next, 1)
				if op >= int64(*total) {
					return
				}
				key := fmt.Sprintf("key:%012d", rng.Intn(*keyspace))
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Put(ctx, key, value)
				cancel()
				latencies[op] = time.Since(t0)
				if err != nil {
					atomic.AddInt64(&errs, 1)
				}
			}
		}(conns[i], int64(i+1))
	}
	wg.Wait()
	elapsed := time.Since(start)

	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	out := result{
		Ops:      *total,
		Errors:   errs,
		Seconds:  elapsed.Seconds(),
		Rps:      float64(*total) / elapsed.Seconds(),
		P50Ms:    ms(percentile(latencies, 0.50)),
		P99Ms:    ms(percentile(latencies, 0.99)),
		MaxMs:    ms(latencies[len(latencies)-1]),
		Endpoint: strings.Join(eps, ","),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}

// findLeader asks each endpoint for its status and returns the leader's endpoint.
func findLeader(eps []string) (string, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		return "", err
	}
	defer c.Close()
	for _, ep := range eps {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.Status(ctx, ep)
		cancel()
		if err == nil && st.Header.MemberId == st.Leader {
			return ep, nil
		}
	}
	return "", fmt.Errorf("no endpoint of %v reports itself as leader", eps)
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
