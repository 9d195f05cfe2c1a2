package storetest

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

var (
	timeType    = reflect.TypeFor[time.Time]()
	timePtrType = reflect.TypeFor[*time.Time]()
)

// diff lists the fields in which got differs from want, two values of the
// same type (a row or a slice of rows), or is "" when they are equal.
// Structs and slices of structs are walked into, so a field added to a row
// type is compared without anyone remembering to. Times compare with Equal
// (a store hands back UTC, or another location); a nil and an empty map or
// slice are equal (a JSON or array column need not tell them apart).
func diff(got, want any) string {
	var d []string
	diffValue(&d, "", reflect.ValueOf(got), reflect.ValueOf(want))
	return strings.Join(d, "; ")
}

func diffValue(d *[]string, name string, g, w reflect.Value) {
	switch {
	case g.Type() == timeType:
		gt, wt := g.Interface().(time.Time), w.Interface().(time.Time)
		if !gt.Equal(wt) {
			*d = append(*d, fmt.Sprintf("%s = %v, want %v", name, gt, wt))
		}
	case g.Type() == timePtrType:
		gt, wt := g.Interface().(*time.Time), w.Interface().(*time.Time)
		if (gt == nil) != (wt == nil) || gt != nil && !gt.Equal(*wt) {
			*d = append(*d, fmt.Sprintf("%s = %s, want %s", name, fmtTimePtr(gt), fmtTimePtr(wt)))
		}
	case g.Kind() == reflect.Struct:
		for i := range g.NumField() {
			f := g.Type().Field(i)
			n := f.Name
			switch {
			case f.Anonymous: // store.Capsule's nestbox.Capsule
				n = name
			case name != "":
				n = name + "." + f.Name
			}
			diffValue(d, n, g.Field(i), w.Field(i))
		}
	case (g.Kind() == reflect.Map || g.Kind() == reflect.Slice) && g.Len() == 0 && w.Len() == 0:
	case g.Kind() == reflect.Slice && g.Type().Elem().Kind() == reflect.Struct:
		if g.Len() != w.Len() {
			*d = append(*d, fmt.Sprintf("%s has %d elements, want %d:\n got %+v\nwant %+v", name, g.Len(), w.Len(), g.Interface(), w.Interface()))
			return
		}
		for i := range g.Len() {
			diffValue(d, fmt.Sprintf("%s[%d]", name, i), g.Index(i), w.Index(i))
		}
	default:
		if !reflect.DeepEqual(g.Interface(), w.Interface()) {
			*d = append(*d, fmt.Sprintf("%s = %#v, want %#v", name, g.Interface(), w.Interface()))
		}
	}
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.String()
}
