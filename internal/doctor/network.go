package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
)

// endpoint is one host the pull path connects to.
type endpoint struct {
	// Role is "ECR API", "registry" or "S3 layer bucket".
	Role string
	Host string // host name or IP literal, no port
	Port string
	TLS  bool
	// Base is scheme://host[:port] as given: a default port stays implied,
	// so the Host header is what clients send.
	Base *url.URL
}

func endpointFromURL(role, raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return endpoint{}, fmt.Errorf("%s endpoint %q is not a URL such as https://host[:port]", role, raw)
	}
	ep := endpoint{Role: role, Host: u.Hostname(), Port: u.Port(), TLS: u.Scheme != "http", Base: &url.URL{Scheme: u.Scheme, Host: u.Host}}
	if ep.Port == "" {
		ep.Port = "443"
		if !ep.TLS {
			ep.Port = "80"
		}
	}
	return ep, nil
}

func (e endpoint) String() string { return net.JoinHostPort(e.Host, e.Port) }

// Failure kinds of a network probe. Each points at a different place to
// look, so they are kept apart.
const (
	failNXDomain     = "nxdomain"
	failDNS          = "dns-error"
	failDNSTimeout   = "dns-timeout"
	failTimeout      = "timeout"
	failRefused      = "refused"
	failUnreachable  = "unreachable"
	failTCP          = "tcp-error"
	failTLSUntrusted = "tls-untrusted"
	failTLSName      = "tls-name"
	failTLSInvalid   = "tls-cert-invalid"
	failTLSNotTLS    = "tls-not-tls"
	failTLSTimeout   = "tls-timeout"
	failTLSReset     = "tls-reset"
	failTLS          = "tls-error"
)

// probeResult is what a DNS, TCP and TLS probe of an endpoint found.
type probeResult struct {
	Addrs   []net.IP
	Private bool
	// Stage is where it failed ("dns", "tcp", "tls"), "" on success.
	Stage, Kind string
	Err         error
	// Detail names what the failure is about (the certificate's issuer or
	// names, the address that timed out).
	Detail     string
	TLSVersion string
}

func (p probeResult) ok() bool { return p.Stage == "" }

// probe resolves, connects to and (for TLS endpoints) handshakes with ep,
// each step bounded by the check timeout.
func (r *run) probe(ctx context.Context, ep endpoint) probeResult {
	var res probeResult
	addrs, kind, err := r.lookup(ctx, ep.Host)
	if err != nil {
		res.Stage, res.Kind, res.Err = "dns", kind, err
		return res
	}
	res.Addrs = addrs
	for _, ip := range addrs {
		if ip.IsPrivate() {
			res.Private = true
		}
	}
	conn, addr, kind, err := r.connect(ctx, addrs, ep.Port)
	if err != nil {
		res.Stage, res.Kind, res.Err, res.Detail = "tcp", kind, err, addr
		return res
	}
	defer conn.Close()
	if !ep.TLS {
		return res
	}
	hctx, cancel := context.WithTimeout(ctx, r.o.CheckTimeout)
	defer cancel()
	tc := tls.Client(conn, &tls.Config{ServerName: ep.Host, RootCAs: r.o.RootCAs, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(hctx); err != nil {
		res.Stage, res.Err = "tls", err
		res.Kind, res.Detail = classifyTLS(err)
		return res
	}
	res.TLSVersion = tls.VersionName(tc.ConnectionState().Version)
	return res
}

func (r *run) lookup(ctx context.Context, host string) ([]net.IP, string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, "", nil
	}
	lctx, cancel := context.WithTimeout(ctx, r.o.CheckTimeout)
	defer cancel()
	ipas, err := r.o.Resolver.LookupIPAddr(lctx, host)
	if err == nil && len(ipas) == 0 {
		err = &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	if err != nil {
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			return nil, failNXDomain, err
		case errors.As(err, &de) && de.IsTimeout, isTimeout(err):
			return nil, failDNSTimeout, err
		}
		return nil, failDNS, err
	}
	ips := make([]net.IP, len(ipas))
	for i, a := range ipas {
		ips[i] = a.IP
	}
	return ips, "", nil
}

// connect tries each address in turn within one check timeout, so a name
// with a dead address and a live one still connects, as clients do.
func (r *run) connect(ctx context.Context, addrs []net.IP, port string) (net.Conn, string, string, error) {
	cctx, cancel := context.WithTimeout(ctx, r.o.CheckTimeout)
	defer cancel()
	var firstErr error
	var firstAddr string
	for _, ip := range addrs {
		addr := net.JoinHostPort(ip.String(), port)
		conn, err := r.o.Dialer.DialContext(cctx, "tcp", addr)
		if err == nil {
			return conn, addr, "", nil
		}
		if firstErr == nil {
			firstErr, firstAddr = err, addr
		}
		if cctx.Err() != nil {
			break
		}
	}
	return nil, firstAddr, classifyTCP(firstErr), firstErr
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) || (errors.As(err, &ne) && ne.Timeout())
}

func classifyTCP(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return failRefused
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return failUnreachable
	case isTimeout(err):
		return failTimeout
	}
	return failTCP
}

func classifyTLS(err error) (kind, detail string) {
	var unknown x509.UnknownAuthorityError
	var name x509.HostnameError
	var invalid x509.CertificateInvalidError
	var rec tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		if unknown.Cert != nil {
			detail = issuerName(unknown.Cert)
		}
		return failTLSUntrusted, detail
	case errors.As(err, &name):
		if name.Certificate != nil {
			detail = strings.Join(certNames(name.Certificate), ", ")
		}
		return failTLSName, detail
	case errors.As(err, &invalid):
		return failTLSInvalid, invalid.Detail
	case errors.As(err, &rec):
		return failTLSNotTLS, ""
	case isTimeout(err):
		return failTLSTimeout, ""
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return failTLSReset, ""
	}
	return failTLS, ""
}

func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	return c.Issuer.String()
}

func certNames(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	return names
}

// probeSummary is the one line a probe prints.
func probeSummary(ep endpoint, p probeResult) string {
	if p.ok() {
		s := fmt.Sprintf("%s resolves to %s", ep, joinIPs(p.Addrs))
		if net.ParseIP(ep.Host) != nil {
			s = ep.String()
		}
		if p.Private {
			s += " (private)"
		}
		if ep.TLS {
			return s + "; TCP and " + p.TLSVersion + " handshake ok"
		}
		return s + "; TCP ok (plain HTTP endpoint, no TLS)"
	}
	switch p.Stage {
	case "dns":
		switch p.Kind {
		case failNXDomain:
			return fmt.Sprintf("DNS: %s does not resolve (no such host)", ep.Host)
		case failDNSTimeout:
			return fmt.Sprintf("DNS: looking up %s timed out", ep.Host)
		}
		return fmt.Sprintf("DNS: looking up %s failed: %v", ep.Host, p.Err)
	case "tcp":
		what := map[string]string{
			failTimeout:     "timed out (no answer at all)",
			failRefused:     "was refused",
			failUnreachable: "failed: no route to host",
		}[p.Kind]
		if what == "" {
			what = fmt.Sprintf("failed: %v", p.Err)
		}
		return fmt.Sprintf("TCP connect to %s (%s) %s", p.Detail, ep.Host, what)
	}
	what := map[string]string{
		failTLSUntrusted: "the certificate is signed by an unknown authority (" + p.Detail + ")",
		failTLSName:      "the certificate is for " + p.Detail + ", not " + ep.Host,
		failTLSInvalid:   "the certificate is not valid now",
		failTLSNotTLS:    "the server does not speak TLS",
		failTLSTimeout:   "the handshake timed out",
		failTLSReset:     "the connection was closed during the handshake",
	}[p.Kind]
	if what == "" {
		what = p.Err.Error()
	}
	return fmt.Sprintf("TLS handshake with %s failed: %s", ep, what)
}

func joinIPs(ips []net.IP) string {
	s := make([]string, 0, len(ips))
	for i, ip := range ips {
		if i == 4 {
			s = append(s, fmt.Sprintf("and %d more", len(ips)-4))
			break
		}
		s = append(s, ip.String())
	}
	return strings.Join(s, ", ")
}

// probeRemedy says where to look for a probe's failure. vpce is true when
// the ECR endpoints resolve to private addresses (interface VPC endpoints
// are in use), which changes where the layer bucket's traffic must go.
func probeRemedy(ep endpoint, p probeResult, region string, vpce bool) string {
	layers := ep.Role == roleLayers
	switch p.Kind {
	case failNXDomain:
		if layers {
			return "S3 names always resolve in public DNS: check /etc/resolv.conf and the VPC's DNS settings (enableDnsSupport)."
		}
		if ep.Role == roleRegistry {
			return fmt.Sprintf("check the account ID and region in the image name; without an internet path, create the interface VPC endpoint com.amazonaws.%s.ecr.dkr with private DNS enabled, and turn on the VPC's enableDnsSupport and enableDnsHostnames.", region)
		}
		return fmt.Sprintf("without an internet path, create the interface VPC endpoint com.amazonaws.%s.ecr.api with private DNS enabled, and turn on the VPC's enableDnsSupport and enableDnsHostnames.", region)
	case failDNSTimeout, failDNS:
		return "the DNS server did not answer: check /etc/resolv.conf, that the VPC resolver (VPC CIDR base + 2) is reachable, and that the network ACL allows UDP and TCP 53 out and the replies back in."
	case failTimeout:
		switch {
		case layers && vpce:
			return fmt.Sprintf("the ECR endpoints are VPC interface endpoints, but layers come from S3: associate the S3 gateway endpoint (com.amazonaws.%s.s3) with this subnet's route table; then check the security group allows outbound TCP 443 to the S3 prefix list (pl-...) and the network ACL allows it out and the replies (ports 1024-65535) back in.", region)
		case p.Private:
			return "packets to the VPC endpoint are dropped: the interface endpoint's security group must allow inbound TCP 443 from this node; then check the node's security group outbound rules and the network ACLs of both subnets (TCP 443 out, ports 1024-65535 back in)."
		}
		return "packets are dropped: check the subnet's route table first (it needs a route to a NAT or internet gateway, or VPC endpoints), then the node's security group outbound rules (TCP 443), then the network ACL (TCP 443 out, ports 1024-65535 back in)."
	case failUnreachable:
		return "no route to this address: the subnet's route table needs a route to a NAT or internet gateway (or a VPC endpoint for it); on the node, check 'ip route' has a default route."
	case failRefused:
		return "the address answered but refused the port. Security groups and network ACLs drop packets rather than refuse them, so look at a host firewall (an iptables/nftables REJECT rule), a transparent proxy, or an endpoint override (AWS_ENDPOINT_URL_ECR, --registry-endpoint) that points at the wrong place."
	case failTCP:
		return "check the node's network configuration ('ip route', 'ip addr') and any host firewall."
	case failTLSUntrusted:
		return "a TLS-inspecting proxy or firewall is in the path: add its CA certificate to the node's trust store (containerd reads it too), or exempt *.amazonaws.com from inspection."
	case failTLSName:
		return "something other than AWS answers at this address: look for an /etc/hosts entry, a DNS override or a proxy that catches the name."
	case failTLSInvalid:
		return "check the node's clock ('chronyc tracking' or 'timedatectl'): a wrong clock makes valid certificates look expired."
	case failTLSNotTLS:
		return "the port answered in plain text: a plain-HTTP proxy or a wrong endpoint override is in the path."
	case failTLSTimeout:
		return "TCP connects but TLS stalls: a firewall inspecting TLS, or a path MTU problem (let ICMP 'fragmentation needed' through the network ACL)."
	case failTLSReset:
		return fmt.Sprintf("the connection was cut during the handshake: a firewall filtering by TLS server name (for example an AWS Network Firewall domain list) blocks %s; allow it.", ep.Host)
	}
	return "check the node's network path to this endpoint."
}

// Endpoint roles.
const (
	roleAPI      = "ECR API"
	roleRegistry = "registry"
	roleLayers   = "S3 layer bucket"
)

// layerBucketHost is the S3 host ECR's layer downloads redirect to in a
// region: prod-<region>-starport-layer-bucket.s3.<region>.<suffix>.
func layerBucketHost(region, partitionSuffix string) string {
	return fmt.Sprintf("prod-%s-starport-layer-bucket.s3.%s.%s", region, region, partitionSuffix)
}

// dialContext resolves with the injected resolver and dials with the
// injected dialer, so registry traffic follows exactly the path the
// network checks probed.
func (r *run) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, _, err := r.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	var first error
	for _, ip := range ips {
		c, err := r.o.Dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}
