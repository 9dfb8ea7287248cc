package obs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMainErr_NoDataDir_RunsInATemporaryDirectoryAndRemovesIt(t *testing.T) {
	var used string
	err := mainErr("test", "", &Settings{}, func(ctx context.Context, dir string, o *Obs) error {
		used = dir
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("the data directory does not exist during the run: %v", err)
		}
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the run has no deadline")
		}
		if o != nil {
			t.Error("no flags given, yet an Obs was started")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(used); !os.IsNotExist(err) {
		t.Fatalf("temporary directory %s left behind (stat: %v)", used, err)
	}
}

func TestMainErr_GivenDir_UsedAndRunErrorReturned(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	err := mainErr("test", dir, &Settings{}, func(_ context.Context, got string, _ *Obs) error {
		if got != dir {
			t.Errorf("run got %q, want %q", got, dir)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("mainErr = %v, want the run's error", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a given directory must be kept: %v", err)
	}
}

func TestMainErr_MissingDir_CreatedAndKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "data")
	err := mainErr("test", dir, &Settings{}, func(_ context.Context, got string, _ *Obs) error {
		info, err := os.Stat(got)
		if err != nil || !info.IsDir() {
			t.Errorf("the data directory was not created before the run: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a created directory must be kept: %v", err)
	}
}

func TestMainErr_DirIsAFile_ClearErrorAndNoRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := mainErr("test", file, &Settings{}, func(context.Context, string, *Obs) error {
		t.Error("run called with an unusable data directory")
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "data directory: ") || strings.Count(err.Error(), file) != 1 {
		t.Fatalf("mainErr = %v, want one clear data directory error", err)
	}
}
