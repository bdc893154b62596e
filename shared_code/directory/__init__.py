"""The directory side, beyond SCIM itself (`shared_code/scim`): one employee as the admin sees them,
roles from Entra groups, corporate and verified domains, the domain audit and the listing a product
starts from.
"""
