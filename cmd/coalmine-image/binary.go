package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"strings"
)

// platform is a linux/ARCH pair of the image index, as GOOS/GOARCH name it.
type platform struct {
	os, arch string
}

func (p platform) String() string { return p.os + "/" + p.arch }

// machine is the ELF machine of a GOARCH an image may be built for.
func machine(arch string) (elf.Machine, bool) {
	switch arch {
	case "amd64":
		return elf.EM_X86_64, true
	case "arm64":
		return elf.EM_AARCH64, true
	case "ppc64le":
		return elf.EM_PPC64, true
	case "s390x":
		return elf.EM_S390, true
	case "riscv64":
		return elf.EM_RISCV, true
	}
	return elf.EM_NONE, false
}

func parsePlatform(s string) (platform, error) {
	goos, arch, ok := strings.Cut(s, "/")
	if !ok || goos != "linux" {
		return platform{}, fmt.Errorf("platform %q: want linux/ARCH", s)
	}
	if _, ok := machine(arch); !ok {
		return platform{}, fmt.Errorf("platform %q: unsupported architecture (amd64, arm64, ppc64le, s390x, riscv64)", s)
	}
	return platform{os: goos, arch: arch}, nil
}

// errDynamic is returned for a binary that needs a dynamic loader or shared libraries: the
// image has neither, so it would fail to start with "no such file or directory".
var errDynamic = errors.New("dynamically linked (build with CGO_ENABLED=0)")

// checkBinary refuses a binary the image could not run: not a Linux executable for p, or not
// static.
func checkBinary(data []byte, p platform) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %v, want an executable", f.Type)
	}
	if want, _ := machine(p.arch); f.Machine != want {
		return fmt.Errorf("built for %v, want %v for %s", f.Machine, want, p)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errDynamic
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("read dynamic section: %w", err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("%w: needs %s", errDynamic, strings.Join(libs, ", "))
	}
	return nil
}
