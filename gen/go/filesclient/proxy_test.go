package filesclient_test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// cutProxy forwards TCP connections to a server, and once armed with cutAfter(n) kills the
// connection that carries the n-th byte from the server to the client: a download broken mid-way
// as a network failure breaks it. It forwards every later connection untouched.
type cutProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	armed   bool
	budget  int64 // server-to-client bytes left before the cut
	cuts    int
	closing bool
	conns   map[net.Conn]bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// cutAfter arms the proxy: the connection delivering server byte n (counted from now) is killed
// after it, once.
func (p *cutProxy) cutAfter(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed, p.budget = true, n
}

func (p *cutProxy) cutCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *cutProxy) close() {
	p.mu.Lock()
	p.closing = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}

func (p *cutProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *cutProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client) || !p.track(server) {
			client.Close()
			server.Close()
			continue
		}
		kill := func() {
			client.Close()
			server.Close()
		}
		go func() {
			_, _ = io.Copy(server, client)
			kill()
		}()
		go func() {
			p.forward(client, server)
			kill()
		}()
	}
}

// forward copies server to client until either ends, or until the armed budget runs out.
func (p *cutProxy) forward(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			send, cut := p.take(int64(n))
			if _, werr := client.Write(buf[:send]); werr != nil || cut {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// take returns how many of n bytes may pass, and whether the connection is then cut.
func (p *cutProxy) take(n int64) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.armed {
		return n, false
	}
	if n < p.budget {
		p.budget -= n
		return n, false
	}
	send := p.budget
	p.armed, p.budget = false, 0
	p.cuts++
	return send, true
}
