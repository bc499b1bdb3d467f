"""Settlement: a History and a contract in, dated payments out, with the provider's and the
commissioner's views by contract year and the monthly cash.
"""
