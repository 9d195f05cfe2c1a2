package rootfs

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// checksumBlock is the unit Checksum judges empty or not.
const checksumBlock = 4096

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC-32C (hex) of the size and content of the file at
// path, read sparsely: every 4 KiB block of a data extent (SEEK_DATA,
// SEEK_HOLE) that is not all zeros counts, after its offset. A hole and a
// block of zeros count alike, so a sparse copy (CopySparse) has its
// source's checksum whatever extents the file system gave it, and the
// work is that of the data, not of the size. It guards a layer kept on
// disk against damage, not against a forger (see the snapshot manifests).
func Checksum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := crc32.New(crc32c)
	buf := make([]byte, 1<<20)
	var head [8]byte
	size := fi.Size()
	binary.BigEndian.PutUint64(head[:], uint64(size))
	h.Write(head[:])
	for off := int64(0); off < size; {
		start, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("checksum %s: seek data: %w", path, err)
		}
		end, err := unix.Seek(int(f.Fd()), start, unix.SEEK_HOLE)
		if err != nil {
			return "", fmt.Errorf("checksum %s: seek hole: %w", path, err)
		}
		// Blocks are aligned to the file, not to the extent.
		for pos := start - start%checksumBlock; pos < end; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), end-pos)], pos)
			if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
				return "", fmt.Errorf("checksum %s: %w", path, err)
			}
			for b := 0; b < n; b += checksumBlock {
				block := buf[b:min(b+checksumBlock, n)]
				if allZero(block) {
					continue
				}
				binary.BigEndian.PutUint64(head[:], uint64(pos)+uint64(b))
				h.Write(head[:])
				h.Write(block)
			}
			pos += int64(n)
		}
		off = end
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// zeros is a block of zeros to compare with (bytes.Equal is vectorised).
var zeros [checksumBlock]byte

func allZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }
