package main

import (
	"time"

	"github.com/elevid/elevid/transparency"
)

// retention maps the configuration to the transparency package.
func (c Config) retention() transparency.Retention {
	return transparency.Retention{
		ReleaseLog: c.Retention.ReleaseLog.D(), AccessLog: c.Retention.AccessLog.D(),
		RemovedPupils: c.Retention.RemovedPupils.D(), ExpiredFlows: c.Retention.ExpiredFlows.D(),
	}
}

// mountTransparency mounts the privacy notice.
func mountTransparency(w *wiring) error {
	p := &transparency.Privacy{
		Store: w.app.store, Site: w.site, Log: w.app.log,
		Controller: transparency.Controller{Name: w.app.cfg.Privacy.Controller, Contact: w.app.cfg.Privacy.Contact, DPO: w.app.cfg.Privacy.DPO},
		Retention:  w.app.cfg.retention(),
		Grace:      30 * 24 * time.Hour,
	}
	p.Mount(w.mux)
	return nil
}
