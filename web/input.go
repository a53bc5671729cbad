package web

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/creditd/creditd/ledger"
)

// checkAddress applies the text rule (ledger.CheckText) to a request's
// path and query: the ids and values pages look up must be text the store
// takes, else the request is 400 before any handler runs.
func checkAddress(r *http.Request) error {
	if err := ledger.CheckText("The address", r.URL.Path, 0); err != nil {
		return err
	}
	return checkValues("The address parameter ", r.URL.Query())
}

// checkValues applies the text rule to every name and value of a query or
// form; the error names the field as prefix+name.
func checkValues(prefix string, vs url.Values) error {
	for k, list := range vs {
		if err := ledger.CheckText(prefix+"name", k, 0); err != nil {
			return err
		}
		for _, v := range list {
			if err := ledger.CheckText(prefix+strconv.Quote(k), v, 0); err != nil {
				return err
			}
		}
	}
	return nil
}
