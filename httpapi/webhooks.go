package httpapi

import (
	"net/http"

	"github.com/creditd/creditd/app"
)

// Outbound webhooks (admin only): endpoints and their deliveries. The
// dispatcher that sends them runs beside the API (package webhook).

type webhookEndpointBody struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

func (s *Server) postWebhookEndpoint(w http.ResponseWriter, r *http.Request, p Principal) {
	var in webhookEndpointBody
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	e, err := s.App.CreateWebhookEndpoint(r.Context(), app.CreateWebhookEndpointRequest{URL: in.URL, Events: in.Events, Description: in.Description})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, e)
}

func (s *Server) listWebhookEndpoints(w http.ResponseWriter, r *http.Request, p Principal) {
	pr, err := s.pageRequest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pg, err := s.App.ListWebhookEndpoints(r.Context(), pr)
	writePage(s, w, r, pg, err)
}

func (s *Server) getWebhookEndpoint(w http.ResponseWriter, r *http.Request, p Principal) {
	e, err := s.App.WebhookEndpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

type webhookEndpointPatch struct {
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Description *string   `json:"description"`
	Status      *string   `json:"status"`
}

func (s *Server) patchWebhookEndpoint(w http.ResponseWriter, r *http.Request, p Principal) {
	var in webhookEndpointPatch
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	req := app.UpdateWebhookEndpointRequest{ID: r.PathValue("id"), URL: in.URL, Description: in.Description, Status: in.Status}
	if in.Events != nil {
		req.Events = *in.Events
		if req.Events == nil {
			req.Events = []string{} // "events": null or [] is refused, not "unchanged"
		}
	}
	e, err := s.App.UpdateWebhookEndpoint(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

type deletedWebhookEndpoint struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

func (s *Server) deleteWebhookEndpoint(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	if err := s.App.DeleteWebhookEndpoint(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedWebhookEndpoint{ID: id, Object: "webhook_endpoint", Deleted: true})
}

type rotateSecretBody struct{}

func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, p Principal) {
	if _, ok := s.readJSON(w, r, &rotateSecretBody{}); !ok {
		return
	}
	e, err := s.App.RotateWebhookSecret(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (s *Server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request, p Principal) {
	pr, err := s.pageRequest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pg, err := s.App.ListWebhookDeliveries(r.Context(), pr)
	writePage(s, w, r, pg, err)
}

type retryDeliveryBody struct{}

func (s *Server) retryWebhookDelivery(w http.ResponseWriter, r *http.Request, p Principal) {
	if _, ok := s.readJSON(w, r, &retryDeliveryBody{}); !ok {
		return
	}
	d, err := s.App.RetryWebhookDelivery(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, d)
}
