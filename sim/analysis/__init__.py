"""What a History says: NDTMS-style measures by period, the payable outcomes a contract can price,
delivery costs and offending. Pure functions of Histories; nothing here simulates.
"""
