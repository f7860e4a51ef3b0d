"""Coach excursions: what a train's tourists do by day. Per departure and itinerary day, an
excursion (a sight, a meeting point at the station, times) is served by coaches, and the
departure's confirmed travellers are assigned to them, party by party."""
