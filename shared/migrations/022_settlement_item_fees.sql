-- What Razorpay charged for a settlement's movements, summed from its recon items when it is
-- judged. The settlement entity's own fees and tax are 0 for a normal settlement: the fee
-- and its GST are on each payment's item.
ALTER TABLE settlements ADD COLUMN item_fees_paise bigint, ADD COLUMN item_tax_paise bigint;
