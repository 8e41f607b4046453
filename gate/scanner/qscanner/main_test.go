package qscanner

import (
	"testing"

	"github.com/scan-gate/scan-gate/internal/scantest"
)

func TestMain(m *testing.M) { scantest.Main(m) }
