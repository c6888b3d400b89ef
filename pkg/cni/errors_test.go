package cni

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/pkg/types"
)

func TestPluginError(t *testing.T) {
	for _, tc := range []struct {
		code uint
		want error
	}{
		{types.ErrTryAgainLater, errdefs.ErrUnavailable},
		{types.ErrPluginNotAvailable, errdefs.ErrUnavailable},
		{types.ErrInvalidNetworkConfig, errdefs.ErrFailedPrecondition},
		{types.ErrIncompatibleCNIVersion, errdefs.ErrFailedPrecondition},
		{types.ErrInternal, errdefs.ErrUnknown},
		{types.ErrIOFailure, errdefs.ErrUnknown},
	} {
		pe := &types.Error{Code: tc.code, Msg: "bridge says no"}
		err := fmt.Errorf("failed to add pod p to network n: %w", pluginError(pe))
		if got := errdefs.Resolve(err); got != tc.want {
			t.Errorf("code %d: kind %v, want %v", tc.code, got, tc.want)
		}
		if !errors.As(err, new(*types.Error)) {
			t.Errorf("code %d: the plugin's error is lost: %v", tc.code, err)
		}
	}
	if err := errors.New("exec: not found"); pluginError(err) != err {
		t.Error("an error of no plugin changed")
	}
}
