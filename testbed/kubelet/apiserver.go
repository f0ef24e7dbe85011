package main

// The API server at the kubernetes Service's address, as in a real cluster. The API server
// listens on the machine's loopback, which no test bed namespace can reach, and nothing routes
// ClusterIPs; so the Service IP is an address of the host namespace (net.go) and this kubelet
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
	"time"

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
// and every other thread (the API relay's dials among them) stays in the machine's.
func listenIn(nsPath, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(nsPath, func() (err error) {
		l, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil && l != nil {
		l.Close()
		return nil, err
	}
	return l, err
}

// dialIn connects to addr from inside the network namespace at nsPath (where the pods'
// addresses are reachable), giving up after timeout.
func dialIn(nsPath, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetns(nsPath, func() (err error) {
		// An address literal: the socket is made on this goroutine's (locked) thread.
		c, err = (&net.Dialer{Timeout: timeout}).Dial("tcp4", addr)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		return nil, err
	}
	return c, err
}

// inNetns runs f on a thread of its own that is in the network namespace at nsPath meanwhile.
// Sockets f makes stay in that namespace; the thread goes back to the machine's after, or, if
// it cannot, ends with its goroutine (it is still locked) instead of running other goroutines
// in the wrong namespace.
func inNetns(nsPath string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer own.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("entering %s: %w", nsPath, err)
			return
		}
		err = f()
		if serr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); serr != nil {
			done <- fmt.Errorf("leaving %s: %w (after: %v)", nsPath, serr, err)
			return
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// relay connects to upstream (from the machine's namespace) and splices client to it.
func relay(client net.Conn, upstream string) {
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		client.Close()
		log.Printf("api relay: %v", err)
		return
	}
	splice(client, server)
}

// splice copies each way between a and b until both directions end, then closes both.
func splice(a, b net.Conn) {
	defer a.Close()
	defer b.Close()
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
	go pipe(b, a)
	go pipe(a, b)
	wg.Wait()
}
