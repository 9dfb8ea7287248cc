package aggregatetest_test

import (
	"errors"
	"fmt"

	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/aggregate/aggregatetest"
)

type cartState struct{ Items []string }
type cartCmd interface{ isCartCmd() }
type addItem struct{ SKU string }
type cartEvt interface{ isCartEvt() }
type itemAdded struct {
	SKU string
	//lint:ignore U1000 the unexported field is what the check must catch
	price int64 // unexported: no codec sees it
}

func (addItem) isCartCmd()   {}
func (itemAdded) isCartEvt() {}

// VerifySerialization (or CheckSerialization in a test) round-trips every
// command, event and the state of a definition and names what does not
// survive.
func ExampleVerifySerialization() {
	carts := aggregate.Definition[cartState, cartCmd, cartEvt]{
		Kind:    "cart",
		Initial: func(string) cartState { return cartState{} },
		Decide: func(_ cartState, c cartCmd) ([]cartEvt, error) {
			return []cartEvt{itemAdded{SKU: c.(addItem).SKU}}, nil
		},
		Evolve:   func(s cartState, e cartEvt) cartState { return cartState{Items: append(s.Items, e.(itemAdded).SKU)} },
		Events:   []aggregate.EventType{aggregate.Event[itemAdded]("shop.cart.item_added")},
		Commands: []aggregate.CommandType{aggregate.CommandOf[addItem]("shop.cart.add_item")},
	}
	err := aggregatetest.VerifySerialization(carts)
	var se *aggregatetest.SerializationError
	if errors.As(err, &se) {
		fmt.Println(se.Role, se.Name)
		fmt.Println(se.Reason)
	}
	// Output:
	// event shop.cart.item_added
	// field price (unexported: codecs only see exported fields): 8 became 0
}
