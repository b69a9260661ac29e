"""How tenant code is confined: bubblewrap, its package index, files a tenant can write."""
