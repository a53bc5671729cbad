package web

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/ledger"
)

// field is one parameter of an action's form. Its Name is the param's
// JSON name.
type field struct {
	Name, Label, Help string
	Type              string // number, select, color, textarea
	Min, Max, Step    string
	Options           []option
	Int               bool // an integer param (else a number or a string)
	Optional          bool // may be left empty (then omitted)
	Default           string
}

type option struct{ Value, Label string }

// action is what the Create page offers. Image actions run on an uploaded
// image (params.source) and are served by the built-in worker; prompt
// actions are served by generation workers.
type action struct {
	Name, Label, Summary string
	Image                bool
	Prompt               bool
	QuantityMax          int64
	Fields               []field
	// Price is filled from the configuration.
	UnitPrice int64
	Category  ledger.Category
	// Available: a worker serves the action now (engine.LiveActions); set
	// by the Create page only.
	Available bool
}

func pixels(name, label, min, def string) field {
	return field{Name: name, Label: label, Type: "number", Min: min, Max: strconv.Itoa(imageops.SideMax), Step: "1", Int: true, Default: def}
}

func percent(name, label string) field {
	return field{Name: name, Label: label, Type: "number", Min: "-100", Max: "100", Step: "1", Default: "0", Help: "-100 to 100; 0 leaves it unchanged"}
}

// catalog lists the actions of the Create page in display order.
var catalog = []action{
	{Name: "crop", Label: "Crop", Summary: "Keep the part of the image you want.", Image: true, QuantityMax: 1, Fields: []field{
		pixels("x", "Left (px)", "0", "0"), pixels("y", "Top (px)", "0", "0"),
		pixels("width", "Width (px)", "1", ""), pixels("height", "Height (px)", "1", ""),
	}},
	{Name: "upscale", Label: "Upscale", Summary: "Enlarge with sharp detail.", Image: true, QuantityMax: 1, Fields: []field{
		{Name: "factor", Label: "Scale", Type: "select", Int: true, Default: "2", Options: []option{{"2", "2× larger"}, {"4", "4× larger"}}},
	}},
	{Name: "expand", Label: "Expand", Summary: "Add room around the image.", Image: true, QuantityMax: 1, Fields: []field{
		pixels("top", "Top (px)", "0", "64"), pixels("right", "Right (px)", "0", "64"),
		pixels("bottom", "Bottom (px)", "0", "64"), pixels("left", "Left (px)", "0", "64"),
		{Name: "fill", Label: "Fill colour", Type: "color", Default: "#ffffff", Optional: true, Help: "Leave as is, or tick transparent below"},
		{Name: "transparent", Label: "Transparent fill", Type: "checkbox"},
	}},
	{Name: "adjust", Label: "Adjust", Summary: "Brightness, contrast, colour and gamma.", Image: true, QuantityMax: 1, Fields: []field{
		percent("brightness", "Brightness (%)"), percent("contrast", "Contrast (%)"), percent("saturation", "Saturation (%)"),
		{Name: "gamma", Label: "Gamma", Type: "number", Min: "0.1", Max: strconv.Itoa(imageops.GammaMax), Step: "0.1", Default: "1", Help: "1 leaves it unchanged"},
	}},
	{Name: "filter", Label: "Filter", Summary: "Grayscale, sepia, blur, sharpen or invert.", Image: true, QuantityMax: 1, Fields: []field{
		{Name: "name", Label: "Filter", Type: "select", Default: "grayscale", Options: []option{
			{"grayscale", "Grayscale"}, {"sepia", "Sepia"}, {"blur", "Blur"}, {"sharpen", "Sharpen"}, {"invert", "Invert"}}},
		{Name: "amount", Label: "Amount", Type: "number", Min: "0", Max: "100", Step: "0.5", Optional: true,
			Help: "Optional. Strength in % (grayscale, sepia, invert) or radius in px (blur, sharpen)"},
	}},
	{Name: "generate", Label: "Generate", Summary: "Create images from a text prompt.", Prompt: true, QuantityMax: 4, Fields: []field{
		{Name: "prompt", Label: "Prompt", Type: "textarea", Help: "Describe the image you want"},
	}},
}

// actions returns the catalog's actions that the configuration prices.
func (a *App) actions() []action {
	var out []action
	for _, ac := range catalog {
		if p, ok := a.cfg.Price(ac.Name); ok {
			ac.UnitPrice, ac.Category = p.UnitCredits, p.Category
			out = append(out, ac)
		}
	}
	return out
}

func (a *App) action(name string) *action {
	for _, ac := range a.actions() {
		if ac.Name == name {
			return &ac
		}
	}
	return nil
}

// promptBytesMax bounds a prompt typed in the app.
const promptBytesMax = 2000

// params builds an action's JSON params from a submitted form.
func (ac *action) params(form url.Values, source string) (json.RawMessage, error) {
	p := map[string]any{}
	if ac.Image {
		if source == "" {
			return nil, ledger.Errorf(ledger.EInvalid, "Upload or choose an image first.")
		}
		p["source"] = source
	}
	for _, f := range ac.Fields {
		v := strings.TrimSpace(form.Get(f.Name))
		switch {
		case f.Type == "checkbox":
			continue
		case f.Name == "fill" && form.Get("transparent") != "":
			continue
		case v == "" && f.Optional:
			continue
		case v == "":
			return nil, ledger.Errorf(ledger.EInvalid, "%s is required.", f.Label)
		case f.Type == "textarea" || f.Type == "color" || f.Type == "select" && !f.Int:
			if len(v) > promptBytesMax {
				return nil, ledger.Errorf(ledger.EInvalid, "%s is too long (at most %d characters).", f.Label, promptBytesMax)
			}
			p[f.Name] = v
		case f.Int:
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, ledger.Errorf(ledger.EInvalid, "%s must be a whole number.", f.Label)
			}
			p[f.Name] = n
		default:
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, ledger.Errorf(ledger.EInvalid, "%s must be a number.", f.Label)
			}
			p[f.Name] = n
		}
	}
	return json.Marshal(p)
}

// values returns a job's params as form values (for the change form).
func (ac *action) values(params json.RawMessage) map[string]string {
	var p map[string]any
	_ = json.Unmarshal(params, &p)
	out := map[string]string{}
	for k, v := range p {
		switch x := v.(type) {
		case string:
			out[k] = x
		case float64:
			out[k] = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(x)
		}
	}
	if ac != nil && ac.Name == "expand" && out["fill"] == "" {
		out["transparent"] = "on"
	}
	return out
}

// defaults returns an action's default form values; crops default to the
// largest centred square of the image, or for a square image to a centred
// square three quarters its side (a crop of the whole image is refused).
func (ac *action) defaults(src *ledger.Asset) map[string]string {
	out := map[string]string{}
	for _, f := range ac.Fields {
		if f.Default != "" {
			out[f.Name] = f.Default
		}
	}
	if ac.Name == "crop" && src != nil {
		side := min(src.Width, src.Height)
		if src.Width == src.Height && side > 1 {
			side = max(side*3/4, 1)
		}
		out["x"] = strconv.FormatInt((src.Width-side)/2, 10)
		out["y"] = strconv.FormatInt((src.Height-side)/2, 10)
		out["width"] = strconv.FormatInt(side, 10)
		out["height"] = strconv.FormatInt(side, 10)
	}
	return out
}

// inQuery reports whether a query carries values of the action's fields
// (a form sent back after it was refused).
func (ac *action) inQuery(q url.Values) bool {
	for _, f := range ac.Fields {
		if q.Has(f.Name) {
			return true
		}
	}
	return false
}

// fromQuery sets the values of the action's fields that a query carries
// (a form sent back after it was refused) over values.
func (ac *action) fromQuery(values map[string]string, q url.Values) {
	if !ac.inQuery(q) {
		return
	}
	for _, f := range ac.Fields {
		switch {
		case q.Has(f.Name):
			values[f.Name] = q.Get(f.Name)
		case f.Type == "checkbox":
			delete(values, f.Name) // an unticked box is not sent
		}
	}
}

// summary describes a job's params in a few words ("grayscale", "2×").
func (ac *action) summary(params json.RawMessage) string {
	v := ac.values(params)
	switch ac.Name {
	case "crop":
		return fmt.Sprintf("%s × %s px at %s, %s", v["width"], v["height"], v["x"], v["y"])
	case "upscale":
		return v["factor"] + "× larger"
	case "expand":
		return fmt.Sprintf("+%s %s %s %s px", v["top"], v["right"], v["bottom"], v["left"])
	case "filter":
		return v["name"]
	case "adjust":
		var parts []string
		keys := []string{"brightness", "contrast", "saturation", "gamma"}
		sort.Strings(keys)
		for _, k := range keys {
			if x := v[k]; x != "" && x != "0" && !(k == "gamma" && x == "1") {
				parts = append(parts, k+" "+x)
			}
		}
		if len(parts) == 0 {
			return "no change"
		}
		return strings.Join(parts, ", ")
	case "generate":
		return v["prompt"]
	}
	return ""
}

// actionLabel names any priced action for people.
func actionLabel(name string) string {
	for _, ac := range catalog {
		if ac.Name == name {
			return ac.Label
		}
	}
	switch name {
	case "edit":
		return "Edit"
	case "style_transfer":
		return "Style transfer"
	case "inpaint":
		return "Inpaint"
	case "erase":
		return "Erase"
	case "replace_background":
		return "Replace background"
	case "remove_background":
		return "Remove background"
	case "redux":
		return "Redux"
	case "video":
		return "Video"
	case "":
		return "Action"
	}
	return strings.ToUpper(name[:1]) + strings.ReplaceAll(name[1:], "_", " ")
}

// formField is a field with its current value, for the templates.
type formField struct {
	field
	ID      string
	Value   string
	Checked bool
}

// formFields pairs an action's fields with values; prefix keeps ids unique
// when a page has two forms.
func formFields(ac *action, values map[string]string, prefix string) []formField {
	if ac == nil {
		return nil
	}
	var out []formField
	for _, f := range ac.Fields {
		v := values[f.Name]
		out = append(out, formField{field: f, ID: prefix + f.Name, Value: v, Checked: f.Type == "checkbox" && v != "" && v != "false"})
	}
	return out
}
