package web

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/ledger"
	"io"
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

// readUpload reads the uploaded image of a parsed multipart form (its
// "file" field) within imageops.UploadBytesMax, with its Content-Type.
func readUpload(r *http.Request) ([]byte, string, error) {
	f, fh, err := r.FormFile("file")
	if err != nil {
		return nil, "", ledger.Errorf(ledger.EInvalid, "the form needs a \"file\" field with the image")
	}
	defer f.Close()
	limit := int64(imageops.UploadBytesMax)
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, "", ledger.Errorf(ledger.EInvalid, "could not read the image")
	}
	if int64(len(data)) > limit {
		return nil, "", &ledger.Error{Code: ledger.ETooLarge, Message: "the image exceeds " + strconv.FormatInt(limit, 10) + " bytes"}
	}
	return data, fh.Header.Get("Content-Type"), nil
}
