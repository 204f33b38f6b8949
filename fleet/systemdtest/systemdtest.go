// Package systemdtest serves the part of systemd's D-Bus API the fleet
// installer uses (Reload, RestartUnit and the JobRemoved signal that ends a
// job) on a unix socket, the way systemd serves /run/systemd/private. Unit
// tests stand it in for a host's systemd, and the end-to-end harness plays
// systemd with it: a restart it is asked for restarts a real kubelet.
package systemdtest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
)

// Handler does what systemd would: method is "Reload" or "RestartUnit"
// (with the unit's name). An error fails the job.
type Handler func(method, unit string) error

// Server is a fake systemd on one socket.
type Server struct {
	ln      net.Listener
	handler Handler

	mu    sync.Mutex
	conns map[*conn]bool
	calls []string
	jobs  uint32
	wg    sync.WaitGroup
}

// Start listens on socket (replacing a stale one) and serves until Close.
func Start(socket string, h Handler) (*Server, error) {
	os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, handler: h, conns: map[*conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Close stops serving and waits for every job.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Calls lists the calls served, as "Reload" or "RestartUnit kubelet.service".
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &conn{nc: nc}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			nc.Close()
		}()
	}
}

type conn struct {
	nc     net.Conn
	mu     sync.Mutex
	serial uint32
}

// send writes msg with the connection's next serial, which godbus keeps
// to itself on the sending side.
func (c *conn) send(msg *dbus.Message) error {
	var b bytes.Buffer
	if err := msg.EncodeTo(&b, binary.LittleEndian); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.serial++
	raw := b.Bytes()
	binary.LittleEndian.PutUint32(raw[8:12], c.serial)
	_, err := c.nc.Write(raw)
	return err
}

// handshake is the server's side of SASL EXTERNAL, which is all systemd's
// private socket takes; file descriptor passing is declined.
func handshake(nc net.Conn, br *bufio.Reader) error {
	if b, err := br.ReadByte(); err != nil || b != 0 {
		return fmt.Errorf("no leading NUL byte")
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		switch f := strings.Fields(line); {
		case len(f) == 1 && f[0] == "AUTH":
			fmt.Fprint(nc, "REJECTED EXTERNAL\r\n")
		case len(f) >= 2 && f[0] == "AUTH" && f[1] == "EXTERNAL":
			fmt.Fprint(nc, "OK 0123456789abcdef0123456789abcdef\r\n")
		case len(f) == 1 && f[0] == "NEGOTIATE_UNIX_FD":
			fmt.Fprint(nc, "ERROR\r\n")
		case len(f) == 1 && f[0] == "BEGIN":
			return nil
		default:
			fmt.Fprint(nc, "ERROR\r\n")
		}
	}
}

func (s *Server) serve(c *conn) {
	br := bufio.NewReader(c.nc)
	if err := handshake(c.nc, br); err != nil {
		return
	}
	for {
		msg, err := dbus.DecodeMessage(br)
		if err != nil {
			return
		}
		if msg.Type != dbus.TypeMethodCall {
			continue
		}
		member, _ := msg.Headers[dbus.FieldMember].Value().(string)
		reply := func(body ...any) {
			r := &dbus.Message{Type: dbus.TypeMethodReply, Headers: map[dbus.HeaderField]dbus.Variant{
				dbus.FieldReplySerial: dbus.MakeVariant(msg.Serial())}, Body: body}
			if len(body) > 0 {
				r.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
			}
			c.send(r) //nolint:errcheck // a closed peer ends the loop at the next read
		}
		fail := func(name, text string) {
			c.send(&dbus.Message{Type: dbus.TypeError, Headers: map[dbus.HeaderField]dbus.Variant{ //nolint:errcheck
				dbus.FieldReplySerial: dbus.MakeVariant(msg.Serial()),
				dbus.FieldErrorName:   dbus.MakeVariant(name),
				dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(""))}, Body: []any{text}})
		}
		switch member {
		case "AddMatch", "Subscribe":
			reply()
		case "Reload":
			s.record("Reload")
			if err := s.handler("Reload", ""); err != nil {
				fail("org.freedesktop.systemd1.ReloadFailed", err.Error())
				continue
			}
			reply()
		case "RestartUnit":
			unit, _ := firstString(msg.Body)
			s.record("RestartUnit " + unit)
			s.mu.Lock()
			s.jobs++
			id := s.jobs
			s.mu.Unlock()
			job := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
			reply(job)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				result := "done"
				if err := s.handler("RestartUnit", unit); err != nil {
					result = "failed"
				}
				s.broadcastJobRemoved(id, job, unit, result)
			}()
		default:
			fail("org.freedesktop.DBus.Error.UnknownMethod", "systemdtest serves Reload and RestartUnit only, not "+member)
		}
	}
}

func firstString(body []any) (string, bool) {
	if len(body) == 0 {
		return "", false
	}
	s, ok := body[0].(string)
	return s, ok
}

func (s *Server) record(call string) {
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
}

// broadcastJobRemoved tells every connection the job ended, as systemd
// does to its private-socket clients.
func (s *Server) broadcastJobRemoved(id uint32, job dbus.ObjectPath, unit, result string) {
	body := []any{id, job, unit, result}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.send(&dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{ //nolint:errcheck
			dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/systemd1")),
			dbus.FieldInterface: dbus.MakeVariant("org.freedesktop.systemd1.Manager"),
			dbus.FieldMember:    dbus.MakeVariant("JobRemoved"),
			dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(body...)),
		}, Body: body})
	}
}
