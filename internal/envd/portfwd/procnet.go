package portfwd

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// socket is one listening TCP socket from /proc/net/tcp{,6}.
type socket struct {
	ip   net.IP
	port uint16
}

// tcpListen is the TCP_LISTEN state in /proc/net/tcp.
const tcpListen = "0A"

// listeners reads the listening sockets from dir/tcp and dir/tcp6. A missing
// tcp6 (IPv6 disabled) is not an error.
func listeners(dir string) ([]socket, error) {
	var out []socket
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			if os.IsNotExist(err) && name == "tcp6" {
				continue
			}
			return nil, err
		}
		socks, err := parseProcNet(bufio.NewScanner(f))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		out = append(out, socks...)
	}
	return out, nil
}

func parseProcNet(sc *bufio.Scanner) ([]socket, error) {
	var out []socket
	first := true
	for sc.Scan() {
		if first { // header line
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != tcpListen {
			continue
		}
		ip, port, err := parseAddr(f[1])
		if err != nil {
			return nil, err
		}
		out = append(out, socket{ip: ip, port: port})
	}
	return out, sc.Err()
}

// parseAddr decodes "0100007F:1F90": the address is in host byte order,
// 32-bit word by 32-bit word (little-endian on every platform we run on).
func parseAddr(s string) (net.IP, uint16, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, fmt.Errorf("bad address %q", s)
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("bad port in %q", s)
	}
	raw, err := hex.DecodeString(host)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, 0, fmt.Errorf("bad ip in %q", s)
	}
	ip := make(net.IP, len(raw))
	for w := 0; w < len(raw); w += 4 {
		ip[w], ip[w+1], ip[w+2], ip[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return ip, uint16(p), nil
}
