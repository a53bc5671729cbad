package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/creditd/creditd/client"
)

// A product backend gives a new user credits and charges a generation.
func Example() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", "sk_admin_…")
	if _, err := c.PutAccount(ctx, "user-42", client.PutAccountRequest{Timezone: "Europe/Berlin"}); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Grant(ctx, "user-42", client.GrantRequest{Amount: 100, Source: "purchase", Reference: "order-1001"}); err != nil {
		log.Fatal(err)
	}
	h, err := c.Reserve(ctx, client.ReserveRequest{AccountID: "user-42", Action: "generate"}, client.WithIdempotencyKey("gen-7"))
	switch client.ErrorCode(err) {
	case "":
	case client.CodeInsufficient:
		fmt.Println("not enough credits")
		return
	default:
		log.Fatal(err)
	}
	one := int64(1)
	if _, err := c.Capture(ctx, h.ID, &one); err != nil {
		log.Fatal(err)
	}
	for e, err := range c.AllEntries(ctx, "user-42", 100) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Type, e.Amount)
	}
}
