package main

// The API server at the kubernetes Service's address, as in a real cluster. The API server
// listens on the machine's loopback, which no test bed namespace can reach, and there is no
// kube-proxy; so the Service IP is an address of the host namespace (net.go) and this kubelet
// listens there and relays each connection to the real API server. Pods reach it through
// their route for the Service range; host-namespace clients directly. TLS passes through
// untouched: the API server's certificate names the Service IP and kubernetes.default.svc.

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// serveAPI relays connections to addr (in the host namespace) to the API server at `server`
// (a URL on the machine's loopback) until ctx ends.
func serveAPI(ctx context.Context, hostNS, addr, server string) error {
	u, err := url.Parse(server)
	if err != nil {
		return err
	}
	upstream := u.Host
	if u.Port() == "" {
		upstream = net.JoinHostPort(u.Hostname(), "443")
	}
	l, err := listenIn(filepath.Join("/run/netns", hostNS), addr)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				if ctx.Err() == nil {
					log.Printf("api relay: %v", err)
				}
				return
			}
			go relay(conn, upstream)
		}
	}()
	return nil
}

// listenIn listens on addr inside the network namespace at nsPath. A socket belongs to the
// namespace of the thread that made it, for good: only the listen call needs the namespace,
// and every other thread (the relay's dials among them) stays in the machine's.
func listenIn(nsPath, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer own.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("entering %s: %w", nsPath, err)}
			return
		}
		l, err := net.Listen("tcp4", addr)
		if serr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); serr != nil {
			// Still locked: the runtime ends this thread with the goroutine instead of letting
			// other goroutines run in the wrong namespace.
			if l != nil {
				l.Close()
			}
			done <- result{err: fmt.Errorf("leaving %s: %w", nsPath, serr)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{l, err}
	}()
	r := <-done
	return r.l, r.err
}

func relay(client net.Conn, upstream string) {
	defer client.Close()
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		log.Printf("api relay: %v", err)
		return
	}
	defer server.Close()
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		// Pass the end of one direction on, so the other can finish (TLS close_notify).
		if tcp, ok := dst.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
	}
	wg.Add(2)
	go pipe(server, client)
	go pipe(client, server)
	wg.Wait()
}
