#include "server/catalog/catalog.h"

#include "gtest/gtest.h"
#include "server/common/status.h"

namespace switchyard::catalog {
namespace {

TEST(SystemCatalogTest, ShippedCatalogCoversTheRequiredSystems) {
  auto catalog = SystemCatalog::FromText(SystemCatalog::DefaultText());
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  for (const char* id :
       {"sap-s4hana", "sap-ecc", "ibm-maximo", "infor-eam", "oracle-ebs", "dynamics-365",
        "netsuite", "odoo", "epicor-kinetic", "maintainx", "upkeep", "limble", "fiix", "emaint"}) {
    EXPECT_NE((*catalog)->Find(id), nullptr) << id;
  }
}

TEST(SystemCatalogTest, CostIsTierCreditsDoubledOnPremises) {
  auto catalog = *SystemCatalog::FromText(SystemCatalog::DefaultText());
  EXPECT_EQ(*catalog->Cost(*catalog->Find("sap-s4hana"), v1::CLOUD), 4);
  EXPECT_EQ(*catalog->Cost(*catalog->Find("sap-ecc"), v1::ON_PREMISES), 8);
  EXPECT_EQ(*catalog->Cost(*catalog->Find("netsuite"), v1::CLOUD), 2);
  EXPECT_EQ(*catalog->Cost(*catalog->Find("maintainx"), v1::CLOUD), 1);
  EXPECT_EQ(ReasonOf(catalog->Cost(*catalog->Find("maintainx"), v1::ON_PREMISES).status()),
            "DEPLOYMENT_NOT_SUPPORTED");
  EXPECT_EQ(catalog->Find("sap-ecc")->credits_by_deployment().at("ON_PREMISES"), 8);
}

TEST(SystemCatalogTest, TierCreditsAndMultiplierAreConfigurable) {
  auto catalog = SystemCatalog::FromText(R"(
    tier_credits: [3, 5]
    on_premises_multiplier: 3
    systems { id: "erp" vendor: "V" product: "P" tier: 2 deployments: [CLOUD, ON_PREMISES] })");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  EXPECT_EQ(*(*catalog)->Cost(*(*catalog)->Find("erp"), v1::CLOUD), 5);
  EXPECT_EQ(*(*catalog)->Cost(*(*catalog)->Find("erp"), v1::ON_PREMISES), 15);
}

TEST(SystemCatalogTest, RejectsBrokenCatalogs) {
  for (const char* text : {
           "systems { id: \"Bad Id\" tier: 1 deployments: [CLOUD] }",
           "systems { id: \"a\" tier: 4 deployments: [CLOUD] }",
           "systems { id: \"a\" tier: 1 }",
           "systems { id: \"a\" tier: 1 deployments: [CLOUD] } "
           "systems { id: \"a\" tier: 1 deployments: [CLOUD] }",
           "tier_credits: [0] systems { id: \"a\" tier: 1 deployments: [CLOUD] }",
           "not text format {",
       }) {
    auto catalog = SystemCatalog::FromText(text);
    EXPECT_EQ(catalog.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  EXPECT_EQ(SystemCatalog::FromFile("/nonexistent/catalog").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SystemCatalogTest, ListPagesInIdOrder) {
  auto catalog = *SystemCatalog::FromText(SystemCatalog::DefaultText());
  v1::ListSystemsRequest req;
  req.set_page_size(5);
  std::vector<std::string> names;
  while (true) {
    auto page = catalog->List(req);
    ASSERT_TRUE(page.ok());
    for (const auto& s : page->systems()) names.push_back(s.name());
    if (page->next_page_token().empty()) break;
    req.set_page_token(page->next_page_token());
  }
  EXPECT_EQ(names.size(), catalog->systems().size());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(ReasonOf(catalog->Get("systems/none").status()), "SYSTEM_NOT_FOUND");
}

}  // namespace
}  // namespace switchyard::catalog
