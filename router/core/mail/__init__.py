"""Reading email: MIME parsing, attachment sniffing and automatic-mail detection."""
