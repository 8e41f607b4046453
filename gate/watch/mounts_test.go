package watch

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const sampleMountinfo = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /proc rw,relatime - proc proc rw
24 22 0:25 /home/alice /home/alice\040two rw - ext4 /dev/vda rw
`

func TestParseMountinfo(t *testing.T) {
	mounts, err := parseMountinfo(strings.NewReader(sampleMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 3 {
		t.Fatalf("got %d mounts, want 3", len(mounts))
	}
	m := mounts[2]
	if m.id != 24 || m.major != 0 || m.minor != 25 || m.root != "/home/alice" ||
		m.mountPoint != "/home/alice two" || m.fsType != "ext4" || m.source != "/dev/vda" {
		t.Errorf("third mount: %+v", m)
	}
	if _, err := parseMountinfo(strings.NewReader("garbage line\n")); err == nil {
		t.Error("a malformed line parsed")
	}
}

func TestIdentify(t *testing.T) {
	loopDev, otherLoop := unix.Mkdev(7, 3), unix.Mkdev(7, 4)
	defer func(saved func(uint64) (loopInfo, bool)) { loopLookup = saved }(loopLookup)
	loopLookup = func(dev uint64) (loopInfo, bool) {
		switch dev {
		case loopDev:
			return loopInfo{file: "/shared/app.sif", offset: 32768}, true
		case otherLoop:
			return loopInfo{file: "/shared/data.sqsh"}, true
		}
		return loopInfo{}, false
	}
	line := func(id, major, minor int, root, at, fs, source string) string {
		majMin := strconv.Itoa(major) + ":" + strconv.Itoa(minor)
		return strings.Join([]string{strconv.Itoa(id), "1", majMin, root, at,
			"rw", "-", fs, source, "rw"}, " ")
	}
	tests := []struct {
		name      string
		dev       uint64
		mountinfo []string
		fsType    string
		image     string
	}{
		{"loop squashfs root", loopDev,
			[]string{line(1, 7, 3, "/", "/", "squashfs", "/dev/loop3")}, "squashfs",
			"/shared/app.sif"},
		{"squashfs root from a subdirectory", loopDev,
			[]string{line(1, 7, 3, "/sub", "/", "squashfs", "/dev/loop3")}, "squashfs", ""},
		{"chrooted into a directory", unix.Mkdev(254, 0),
			[]string{line(1, 254, 0, "/", "/srv", "ext4", "/dev/vda")}, "", ""},
		{"overlay root", unix.Mkdev(0, 50),
			[]string{line(1, 0, 50, "/", "/", "overlay", "overlay")}, "overlay", ""},
		{"underlay: tmpfs root with binds of one image", unix.Mkdev(0, 60),
			[]string{line(1, 0, 60, "/", "/", "tmpfs", "tmpfs"),
				line(2, 7, 3, "/usr", "/usr", "squashfs", "/dev/loop3"),
				line(3, 7, 3, "/etc", "/etc", "squashfs", "/dev/loop3")},
			"tmpfs", "/shared/app.sif"},
		{"tmpfs root with binds of two images", unix.Mkdev(0, 60),
			[]string{line(1, 0, 60, "/", "/", "tmpfs", "tmpfs"),
				line(2, 7, 3, "/usr", "/usr", "squashfs", "/dev/loop3"),
				line(3, 7, 4, "/", "/data", "squashfs", "/dev/loop4")},
			"tmpfs", ""},
		{"a mount on top of the root", loopDev,
			[]string{line(1, 7, 3, "/", "/", "squashfs", "/dev/loop3"),
				line(2, 0, 70, "/", "/", "tmpfs", "tmpfs")}, "", ""},
	}
	for _, tt := range tests {
		mounts, err := parseMountinfo(strings.NewReader(strings.Join(tt.mountinfo, "\n")))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		root := identify(RootID{Dev: tt.dev, Ino: 1}, mounts)
		if root.FSType != tt.fsType || root.Image != tt.image {
			t.Errorf("%s: fs %q image %q, want %q %q", tt.name, root.FSType, root.Image,
				tt.fsType, tt.image)
		}
	}
}
