package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// CheckpointContainer is not supported: a container's state lives in its
// VM's memory, which vc-cri does not snapshot.
func (s *Service) CheckpointContainer(context.Context, *runtime.CheckpointContainerRequest) (*runtime.CheckpointContainerResponse, error) {
	return nil, notImplemented("checkpoint is not supported by vc-cri: containers run inside pod VMs")
}

// CheckpointPod is not supported, as CheckpointContainer.
func (s *Service) CheckpointPod(context.Context, *runtime.CheckpointPodRequest) (*runtime.CheckpointPodResponse, error) {
	return nil, notImplemented("pod checkpoint is not supported by vc-cri: pods are VMs")
}

// RestorePod is not supported, as CheckpointPod.
func (s *Service) RestorePod(context.Context, *runtime.RestorePodRequest) (*runtime.RestorePodResponse, error) {
	return nil, notImplemented("pod restore is not supported by vc-cri: pods are VMs")
}

func (s *Service) setPodCIDR(cidr string) {
	s.cidrMu.Lock()
	defer s.cidrMu.Unlock()
	if s.podCIDR != cidr {
		klog.InfoS("Pod CIDR updated; pod addresses come from the CNI configuration", "podCIDR", cidr)
		s.podCIDR = cidr
	}
}
